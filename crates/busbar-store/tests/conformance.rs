//! The backend-independent conformance suite against the log store, in several
//! configurations (small segments exercise rolling and reclamation in every check).

use std::path::Path;

use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Durability, Recovered, StoreError};

mod default_options {
    use super::*;

    fn open(dir: &Path) -> Result<(LogStore, Recovered), StoreError> {
        LogStore::open(dir, LogOptions::default())
    }

    busbar_store::store_conformance_tests!(open);
}

mod small_segments {
    use super::*;

    fn open(dir: &Path) -> Result<(LogStore, Recovered), StoreError> {
        LogStore::open(
            dir,
            LogOptions {
                segment_bytes: 300,
                ..LogOptions::default()
            },
        )
    }

    busbar_store::store_conformance_tests!(open);
}

mod buffered {
    use super::*;

    fn open(dir: &Path) -> Result<(LogStore, Recovered), StoreError> {
        LogStore::open(
            dir,
            LogOptions {
                durability: Durability::Buffered,
                segment_bytes: 4096,
            },
        )
    }

    busbar_store::store_conformance_tests!(open);
}
