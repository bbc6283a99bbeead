//! The [`Notes`] the notifier keeps about a request, over the store's annotations: the
//! notifier is handed this instead of the store, so it can remember where it posted
//! but never touch a request's state.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::core::ids::RequestId;
use crate::core::ports::{Notes, Store, StoreError};

/// Notes kept as the store's annotations of each request.
pub struct StoreNotes {
    store: Arc<dyn Store>,
}

impl StoreNotes {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreNotes { store }
    }
}

#[async_trait]
impl Notes for StoreNotes {
    async fn note(&self, id: &RequestId, key: &str, value: &str) -> Result<(), StoreError> {
        self.store.annotate(id, key, value).await
    }

    async fn notes(&self, id: &RequestId) -> Result<BTreeMap<String, String>, StoreError> {
        self.store.annotations(id).await
    }
}
