//! [`Lookup`]: the answer of [`TokenStore::find`](super::TokenStore::find).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{StoreError, TokenRecord};

/// What a lookup yields: the record (with `owner_suspended` filled in), or
/// `None` for an unknown id, or a store failure.
pub(crate) type Found = Result<Option<Arc<TokenRecord>>, StoreError>;

type Pending = Pin<Box<dyn Future<Output = Found> + Send>>;

/// The answer of [`TokenStore::find`](super::TokenStore::find): either
/// ready at once, for a store that holds its records in memory, or a
/// future, for one that does I/O.
///
/// A ready answer lets the layer finish the request without a timer or an
/// allocation; a pending one runs under the layer's store timeout. Either
/// way, a `Lookup` is a future, so callers can simply `.await` it.
///
/// ```
/// use std::sync::Arc;
/// use tower_pat::store::{Lookup, StoreError, TokenRecord};
///
/// // In memory: answer now.
/// fn from_memory(record: Option<Arc<TokenRecord>>) -> Lookup {
///     Lookup::ready(Ok(record))
/// }
///
/// // Over the network: answer later. The future owns what it uses (clone
/// // your pool or client into it).
/// fn from_network(client: Arc<String>) -> Lookup {
///     Lookup::pending(async move {
///         let _ = client; // query here
///         Err(StoreError::unavailable("not connected"))
///     })
/// }
/// # let _ = (from_memory(None), from_network(Arc::new(String::new())));
/// ```
#[must_use = "a lookup does nothing unless awaited"]
pub struct Lookup(State);

enum State {
    Ready(Option<Found>),
    Pending(Pending),
}

impl Lookup {
    /// An answer available now. `Ok(None)` means the id is unknown; `Err`
    /// is for real failures only (the layer answers them 503).
    #[inline]
    pub fn ready(answer: Result<Option<Arc<TokenRecord>>, StoreError>) -> Self {
        Self(State::Ready(Some(answer)))
    }

    /// An answer that a future will give. The future must own what it
    /// uses (`'static`), as a tower service's future does.
    pub fn pending<F>(future: F) -> Self
    where
        F: Future<Output = Result<Option<Arc<TokenRecord>>, StoreError>> + Send + 'static,
    {
        Self(State::Pending(Box::pin(future)))
    }

    /// The answer, if it is ready; otherwise the lookup itself, to await.
    #[inline]
    pub(crate) fn now(self) -> Result<Found, Self> {
        match self.0 {
            State::Ready(Some(found)) => Ok(found),
            state => Err(Self(state)),
        }
    }
}

impl Future for Lookup {
    type Output = Result<Option<Arc<TokenRecord>>, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            State::Ready(found) => {
                Poll::Ready(found.take().expect("Lookup polled after completion"))
            }
            State::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            State::Ready(_) => "ready",
            State::Pending(_) => "pending",
        };
        f.debug_tuple("Lookup").field(&state).finish()
    }
}
