"""mmurace against SPIN on the same race: race_remap with one vcpu and N remaps.

    python bench/spin.py                      # remaps 1-3, seq_retry: both prove it
    python bench/spin.py --remaps 1,2,3,4,5   # larger sizes (stateless only up to --stateless-up-to)
    python bench/spin.py --design no_retry    # both must find the race
    python bench/spin.py --quick              # remaps 1-2: a smoke test
    python bench/spin.py --emit 2             # print the Promela model for 2 remaps
    python bench/spin.py --repeat 3           # the fastest of 3 runs of each command

For each size it writes a Promela model of ``race_remap`` (``promela``:
one vcpu writing one guest page twice, QEMU mmap(MAP_FIXED)-ing over it N
times, KVM's notifier callbacks, and the stale-spte assertion), runs SPIN
end to end on it (``spin -a``, ``gcc -o pan pan.c``, ``./pan``), then
``mmurace explore race_remap --design D -p remaps=N`` end to end, stateful
(the default) and, at small sizes, ``--stateless``, and prints SPIN's stored
states, mmurace's states and runs, the times and their ratio. Both are
whole commands in fresh processes, start-up and compilation included: what
a user waits for.

SPIN is optional (Debian package ``spin``); without it the script prints
mmurace's figures alone and says so. Each step of the model is one atomic
Promela block standing for one step of mmurace's trace, so both search the
same interleavings; both store states, SPIN reduces partial orders its own
way, mmurace with sleep sets, and re-reaches a state by replaying its prefix.
"""

from __future__ import annotations

import argparse
import compileall
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import attrs

T = TypeVar("T")

#: guest writes to the page, as race_remap's default
ACCESSES = 2
#: remaps measured by default, and with --quick
SIZES = (1, 2, 3)
QUICK_SIZES = (1, 2)
DESIGNS = ("seq_retry", "no_retry")


def promela(remaps: int, *, retry: bool = True, accesses: int = ACCESSES) -> str:
    """The Promela model of race_remap: ``retry`` False is no_retry (no seq/in_progress recheck).

    Pages are numbered from 1 (0: none) and never reused, so a page whose
    last reference went is freed for good; the assertion is mmurace's
    stale_spte oracle: no spte may point at a freed page.
    """
    return f"""\
/* race_remap --design {"seq_retry" if retry else "no_retry"} -p remaps={remaps}, by bench/spin.py */
#define REMAPS {remaps}
#define ACCESSES {accesses}
#define RETRY {int(retry)}
#define PAGES (REMAPS + 2)

byte ref[PAGES];      /* page refcounts */
bool freed[PAGES];    /* the last reference went: the page is free */
byte pte = 1;         /* the host pte of the guest page's hva: a page, 0 none */
byte next_page = 2;   /* handle_mm_fault's next fresh page */
byte spte = 0;        /* KVM's spte for gfn 0: a page, 0 none */
byte seq = 0;         /* mmu_invalidate_seq */
byte in_progress = 0; /* mmu_invalidate_in_progress */
bool writer = 0;      /* mmap_lock held for write */

mtype = {{ START, END }};
chan notify = [1] of {{ mtype }};  /* mmu_notifier_invalidate_range_start/end, to KVM */
chan answer = [1] of {{ bit }};    /* the callback returned */

inline put_page(p) {{
    ref[p]--;
    if
    :: ref[p] == 0 -> freed[p] = 1
    :: else -> skip
    fi
}}

proctype vcpu() {{
    byte done = 0;
    byte mmu_seq;
    byte pfn;
    bool retry;
    bool spinning = 0;
access:  /* guest write gfn 0 */
    atomic {{
        if
        :: done == ACCESSES -> goto finished
        :: done < ACCESSES && spte != 0 -> done++; goto access
        :: done < ACCESSES && spte == 0 -> skip  /* no spte: exit to kvm_mmu_page_fault */
        fi
    }}
fault:  /* kvm_faultin_pfn; after a retry that met an invalidation, wait for its end */
    atomic {{ (!spinning || in_progress == 0) -> mmu_seq = seq }}
    atomic {{  /* get_user_pages: mmap_read_lock, fault the page in, take a reference, unlock */
        !writer ->
        if
        :: pte == 0 -> pte = next_page; next_page++; ref[pte] = 1
        :: else -> skip
        fi;
        ref[pte]++;
        pfn = pte
    }}
    atomic {{  /* mmu_lock: mmu_invalidate_retry, map */
        retry = RETRY && (in_progress != 0 || seq != mmu_seq);
        if
        :: !retry -> spte = pfn
        :: else -> skip
        fi
    }}
    atomic {{ put_page(pfn) }}  /* kvm_release_pfn_clean */
    if
    :: !retry -> goto access
    :: else -> spinning = (in_progress != 0); goto fault
    fi;
finished:
    skip
}}

proctype qemu() {{
    byte n = 0;
    byte old;
    do
    :: n == REMAPS -> break
    :: else ->
        atomic {{ !writer -> writer = 1 }}   /* do_mmap(MAP_FIXED): mmap_write_lock */
        notify!START;                        /* mmu_notifier_invalidate_range_start */
        atomic {{ answer?_ -> old = pte; pte = 0 }}  /* zap_pte_range: ptep_get_and_clear */
        atomic {{                            /* tlb_flush_mmu: put_page */
            if
            :: old != 0 -> put_page(old)
            :: else -> skip
            fi
        }}
        notify!END;                          /* mmu_notifier_invalidate_range_end */
        answer?_;                            /* remove_vma */
        atomic {{ writer = 0; n++ }}         /* mmap_region: new vma, mmap_write_unlock */
    od
}}

proctype notifier() {{  /* KVM's kvm_mmu_notifier_invalidate_range_start/end */
    mtype m;
end:
    do
    :: notify?m ->
        if
        :: m == START -> atomic {{ in_progress++; spte = 0; answer!1 }}  /* invalidate_begin, unmap, flush */
        :: m == END -> atomic {{ seq++; in_progress--; answer!1 }}       /* kvm_mmu_invalidate_end */
        fi
    od
}}

proctype stale_spte() {{  /* the oracle, judged in every state */
end:
    atomic {{ spte != 0 && freed[spte] -> assert(false) }}
}}

init {{
    atomic {{
        ref[1] = 1;  /* page 1 is mapped by the pte: its reference */
        run vcpu(); run qemu(); run notifier(); run stale_spte()
    }}
}}
"""


@attrs.frozen
class Spin:
    """SPIN end to end on one model: stored states, whether it found the violation, times."""

    states: int
    found: bool
    seconds: dict[str, float]  # spin -a, gcc, pan

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


@attrs.frozen
class Mmurace:
    """``mmurace explore`` end to end: runs (complete + pruned), states remembered, verdict, time."""

    runs: int
    verdict: str
    seconds: float
    states: int | None = None  # None: stateless


def run_spin(spin: str, model: str) -> Spin:
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mmurace-spin-") as tmp:
        Path(tmp, "race_remap.pml").write_text(model)
        out = ""
        for name, argv in (
            ("spin -a", [spin, "-a", "race_remap.pml"]),
            ("gcc", ["gcc", "-o", "pan", "pan.c"]),
            ("pan", ["./pan"]),
        ):
            t = time.perf_counter()
            proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, check=False)
            seconds[name] = time.perf_counter() - t
            out = proc.stdout
            if name != "pan" and proc.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{proc.stdout}{proc.stderr}")
    if "max search depth too small" in out:
        raise RuntimeError("pan's search depth is too small: the search was cut")
    states = re.search(r"^\s*([0-9]+) states, stored", out, re.M)
    errors = re.search(r"errors: ([0-9]+)", out)
    if states is None or errors is None:
        raise RuntimeError(f"unexpected pan output:\n{out}")
    return Spin(int(states[1]), int(errors[1]) > 0, seconds)


def run_mmurace(design: str, remaps: int, *, stateless: bool = False) -> Mmurace:
    argv = [sys.executable, "-c", "from mmurace.cli import entry; entry()",
            "explore", "race_remap", "--design", design, "-p", f"remaps={remaps}", "--json", "--no-save"]
    argv += ["--stateless"] if stateless else []
    t = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    if proc.returncode not in (0, 1, 3):  # 3: stopped at its run limit, inconclusive
        raise RuntimeError(f"mmurace explore failed:\n{proc.stderr}")
    e = json.loads(proc.stdout)
    return Mmurace(e["executions"] + e["pruned"], e["verdict"], seconds, e.get("states"))


def compile_bytecode() -> None:
    """Compile mmurace's modules to bytecode, as installing a package does: what a user's
    command reads at start-up (with PYTHONDONTWRITEBYTECODE set and no bytecode yet, every
    run would compile every module again: a cost of this checkout, not of the tool)."""
    import mmurace

    root = Path(mmurace.__file__).resolve().parent.parent
    for package in ("mmu", "actors", "scenarios", "mmurace"):
        compileall.compile_dir(root / package, quiet=1)


def best(measure: Callable[[], T], repeat: int, seconds: Callable[[T], float]) -> T:
    """The fastest of ``repeat`` measurements (the others were slowed by something else)."""
    return min((measure() for _ in range(repeat)), key=seconds)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remaps", help=f"sizes, comma-separated (default {','.join(map(str, SIZES))})")
    parser.add_argument("--design", choices=DESIGNS, default="seq_retry", help="the fault path modelled")
    parser.add_argument("--spin", default="spin", help="the spin command (default: spin on the PATH)")
    parser.add_argument("--quick", action="store_true",
                        help=f"default sizes {','.join(map(str, QUICK_SIZES))}: a smoke test")
    parser.add_argument("--emit", type=int, metavar="N", help="print the Promela model for N remaps and stop")
    parser.add_argument("--stateless-up-to", type=int, default=None, metavar="N",
                        help="also run the stateless search (--stateless) up to N remaps (default 2,"
                             " 1 with --quick; at 3 it stops at its 100,000-run limit after minutes)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure each command N times and keep the fastest (default 1)")
    args = parser.parse_args(argv)
    if args.stateless_up_to is None:
        args.stateless_up_to = 1 if args.quick else 2
    retry = args.design == "seq_retry"
    if args.emit is not None:
        print(promela(args.emit, retry=retry), end="")
        return 0
    if args.remaps:
        sizes = tuple(int(n) for n in args.remaps.split(","))
    else:
        sizes = QUICK_SIZES if args.quick else SIZES
    spin = shutil.which(args.spin)
    gcc = shutil.which("gcc")
    compile_bytecode()
    print(f"race_remap --design {args.design}: 1 vcpu x {ACCESSES} writes, N remaps;"
          " SPIN (spin -a, gcc, ./pan) against mmurace explore, each end to end"
          f" (mmurace's bytecode compiled beforehand, as an install does; the fastest of {args.repeat})")
    if spin is None or gcc is None:
        missing = "spin" if spin is None else "gcc"
        print(f"{missing} was not found (Debian package {missing}): mmurace's figures alone")
    print(f"  {'remaps':>6} {'spin states':>12} {'spin -a':>8} {'gcc':>6} {'pan':>6} {'spin':>7}"
          f"   {'states':>8} {'runs':>7} {'mmurace':>8}   {'mmurace/spin':>12}"
          f"   {'stateless runs':>14} {'stateless':>9}   verdicts (spin; mmurace; stateless)")
    for n in sizes:
        ours = best(lambda n=n: run_mmurace(args.design, n), args.repeat, lambda m: m.seconds)
        if n <= args.stateless_up_to:
            old = run_mmurace(args.design, n, stateless=True)
            runs = f"{'>' if old.verdict == 'limit' else ''}{old.runs}"
            before = f"{runs:>14} {old.seconds:8.2f}s"
            old_verdict = old.verdict
        else:
            before, old_verdict = f"{'-':>14} {'-':>9}", "-"
        mine = f"{ours.states if ours.states is not None else '-':>8} {ours.runs:>7} {ours.seconds:7.2f}s"
        if spin is None or gcc is None:
            print(f"  {n:>6} {'-':>12} {'-':>8} {'-':>6} {'-':>6} {'-':>7}"
                  f"   {mine}   {'-':>12}   {before}   -; {ours.verdict}; {old_verdict}")
            continue
        theirs = best(lambda n=n: run_spin(spin, promela(n, retry=retry)), args.repeat, lambda t: t.total)
        s = theirs.seconds
        verdict = "assertion violated" if theirs.found else "no violation"
        print(f"  {n:>6} {theirs.states:>12} {s['spin -a']:7.2f}s {s['gcc']:5.2f}s {s['pan']:5.2f}s"
              f" {theirs.total:6.2f}s   {mine}"
              f"   {ours.seconds / theirs.total:11.2f}x   {before}"
              f"   {verdict}; {ours.verdict}; {old_verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
