"""Constants shared by the model's modules."""

#: the base page size of the host and the guest
PAGE_SIZE = 4096
