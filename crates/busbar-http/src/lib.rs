//! HTTP admin API, health and metrics.
