//! leasewire's lease-state database (work in progress).
#![forbid(unsafe_code)]
