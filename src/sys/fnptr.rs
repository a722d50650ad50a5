//! Function pointers as ASLR-independent offsets.
