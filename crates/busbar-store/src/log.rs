//! The embedded append-only segmented log.
