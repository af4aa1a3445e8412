//! [`ResponseFuture`] for [`super::Auth`].

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::verify::{Admitted, Config};
use crate::limit::RateFields;
use crate::response::{Rejection, RejectionKind, Responder};
use crate::store::StoreErrorKind;
use crate::trace::RejectionClass;

type Lookup = Pin<Box<dyn Future<Output = Result<Admitted, Rejection>> + Send>>;

pin_project! {
    /// Response future of [`super::Auth`].
    pub struct ResponseFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, R>,
    }
}

/// What an asynchronous lookup needs until it ends. Boxed, so that the
/// future of every request stays small (a request is over 200 bytes) and
/// moves cheaply; only lookups that wait for the store pay for the box.
struct Pending<S, ReqBody, R> {
    lookup: Lookup,
    request: Option<Request<ReqBody>>,
    inner: Option<S>,
    responder: R,
    config: Arc<Config>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Verifying {
            pending: Box<Pending<S, ReqBody, R>>,
        },
        // Let through; the `RateLimit` fields go on the answer of a token
        // with a budget.
        Calling {
            #[pin]
            future: S::Future,
            rate: Option<RateFields>,
        },
        // Let through without credentials by an optional layer: a handler
        // that required them answers as the layer would have.
        CallingAnonymous {
            #[pin]
            future: S::Future,
            responder: R,
            config: Arc<Config>,
        },
        Rejected {
            response: Option<S::Response>,
        },
    }
}

impl<S, ReqBody, R> fmt::Debug for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Verifying { .. } => "verifying",
            State::Calling { .. } | State::CallingAnonymous { .. } => "calling",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// Marks a response of a handler that required credentials the request
/// did not carry (set by the axum `Authenticated` extractor). Behind an
/// optional layer, the layer answers such a request itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredentialsRequired;

/// Builds the rejection response, and attaches the typed reason when the
/// layer was asked to.
pub(crate) fn respond<B, R: Responder<B>>(rejection: Rejection, responder: &R) -> Response<B> {
    crate::meter::rejected(rejection.kind().as_str());
    crate::trace::rejected(
        &crate::trace::Rejected {
            reason: rejection.kind().as_str(),
            token_id: rejection.token_id(),
            status: rejection.status().as_u16(),
            error: rejection.error_code().unwrap_or(""),
            class: match rejection.kind() {
                RejectionKind::MissingCredentials => RejectionClass::Ordinary,
                RejectionKind::StoreUnavailable(_) => RejectionClass::NotTheClients,
                RejectionKind::NotAuthenticated => RejectionClass::Wiring,
                _ => RejectionClass::Refused,
            },
        },
        rejection.log(),
    );
    let mut res = responder.respond(&rejection);
    if rejection.attached() {
        res.extensions_mut().insert(rejection);
    }
    res
}

impl<S, ReqBody, ResBody, R> ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Responder<ResBody>,
{
    pub(super) fn rejected(rejection: Rejection, responder: &R) -> Self {
        Self {
            state: State::Rejected {
                response: Some(respond(rejection, responder)),
            },
        }
    }

    pub(super) fn calling(future: S::Future, rate: Option<RateFields>) -> Self {
        Self {
            state: State::Calling { future, rate },
        }
    }

    pub(super) fn calling_anonymous(future: S::Future, responder: R, config: Arc<Config>) -> Self {
        Self {
            state: State::CallingAnonymous {
                future,
                responder,
                config,
            },
        }
    }

    pub(super) fn verifying(
        lookup: Lookup,
        request: Request<ReqBody>,
        inner: S,
        responder: R,
        config: Arc<Config>,
    ) -> Self {
        Self {
            state: State::Verifying {
                pending: Box::new(Pending {
                    lookup,
                    request: Some(request),
                    inner: Some(inner),
                    responder,
                    config,
                }),
            },
        }
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Responder<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying { pending } => {
                    let Pending {
                        lookup,
                        request,
                        inner,
                        responder,
                        config,
                    } = &mut **pending;
                    // A panicking store fails this request closed; the
                    // service keeps serving others.
                    let verdict = match catch_unwind(AssertUnwindSafe(|| lookup.as_mut().poll(cx)))
                    {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(v)) => v,
                        Err(_) => Err(config
                            .rejection(RejectionKind::StoreUnavailable(StoreErrorKind::Panicked))),
                    };
                    match verdict {
                        Ok(Admitted { auth, rate }) => {
                            crate::trace::authenticated(auth.token_id());
                            let (Some(mut req), Some(mut svc)) = (request.take(), inner.take())
                            else {
                                panic!("polled after completion");
                            };
                            req.extensions_mut().insert(auth);
                            let future = svc.call(req);
                            this.state.set(State::Calling { future, rate });
                        }
                        Err(rejection) => {
                            let res = respond(rejection, responder);
                            this.state.set(State::Rejected { response: None });
                            return Poll::Ready(Ok(res));
                        }
                    }
                }
                StateProj::Calling { future, rate } => {
                    let mut out = ready!(future.poll(cx));
                    if let (Some(rate), Ok(res)) = (rate.take(), &mut out) {
                        rate.apply(res.headers_mut());
                    }
                    this.state.set(State::Rejected { response: None });
                    return Poll::Ready(out);
                }
                StateProj::CallingAnonymous {
                    future,
                    responder,
                    config,
                } => {
                    let out = ready!(future.poll(cx));
                    // The handler wanted a token this request did not
                    // carry (the `Authenticated` extractor marked its
                    // answer): the layer's own answer to a missing token.
                    let out = match out {
                        Ok(res) if res.extensions().get::<CredentialsRequired>().is_some() => {
                            Ok(respond(
                                config.rejection(RejectionKind::MissingCredentials),
                                responder,
                            ))
                        }
                        other => other,
                    };
                    this.state.set(State::Rejected { response: None });
                    return Poll::Ready(out);
                }
                StateProj::Rejected { response } => {
                    let res = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}
