//! Value encoding and decoding.
