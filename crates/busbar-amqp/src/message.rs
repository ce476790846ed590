//! Message sections kept as raw slices so the bare message is never re-encoded.
