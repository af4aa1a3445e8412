//! [`Auth`]: the service, which hands each request to the verification
//! path (`verify.rs`) and acts on its answer.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::verify::{Begun, Config};
use super::{Anonymous, ResponseFuture};
use crate::response::{ProblemDetails, Responder};

/// The service produced by [`AuthLayer`](crate::auth::AuthLayer).
#[derive(Clone)]
pub struct Auth<S, R = ProblemDetails> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
    pub(super) responder: R,
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for Auth<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("responder", &self.responder)
            .finish()
    }
}

impl<S, R> Auth<S, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: Responder<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.config.begin(&req) {
            Begun::Refused(rejection) => ResponseFuture::rejected(rejection, &self.responder),
            Begun::Anonymous => {
                req.extensions_mut().insert(Anonymous);
                ResponseFuture::calling_anonymous(
                    self.inner.call(req),
                    self.responder.clone(),
                    self.config.clone(),
                )
            }
            Begun::Verified(admitted) => {
                crate::trace::authenticated(admitted.auth.token_id());
                req.extensions_mut().insert(admitted.auth);
                ResponseFuture::calling(self.inner.call(req), admitted.rate)
            }
            Begun::Pending(verdict) => {
                // The inner service that was ready goes with the request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let (responder, config) = (self.responder.clone(), self.config.clone());
                ResponseFuture::verifying(verdict, req, inner, responder, config)
            }
        }
    }
}
