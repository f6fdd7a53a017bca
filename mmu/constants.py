"""Constants shared by the model's modules."""

#: the base page size of the host and the guest
PAGE_SIZE = 4096

#: base pages per transparent huge page: 4 stand for x86's 512 (a 2M PMD), so
#: that a huge page, its split and its collapse stay a few frames and steps
HPAGE_PAGES = 4
#: the size a PMD maps (``HPAGE_PMD_SIZE``), scaled down with ``HPAGE_PAGES``
HPAGE_SIZE = HPAGE_PAGES * PAGE_SIZE
