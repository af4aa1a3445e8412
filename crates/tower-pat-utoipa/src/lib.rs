#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt::Write as _;

use serde_json::json;
use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{OpenApi, RefOr, Response, Schema};
use utoipa_axum::router::UtoipaMethodRouter;

use tower_pat::{response::Responder, scope::ScopeMatch, AuthLayer, TokenConfig};

/// The name of the security scheme in the document.
pub const SECURITY_SCHEME: &str = "personal_access_token";
/// The name of the problem-details schema in the document's components.
const PROBLEM_SCHEMA: &str = "TowerPatProblem";

/// Scope checks for utoipa-axum routes, documented as they are enforced.
/// Implemented for [`UtoipaMethodRouter`] (what `routes!` returns).
pub trait ScopedRoute: Sized {
    /// Requires **every** scope in `scopes` on this route's handlers, and
    /// documents it on this route's operations. Calling it twice requires
    /// both sets (and documents both).
    ///
    /// # Panics
    ///
    /// As [`AuthLayer::require_scopes`]: for a scope the catalog does not
    /// define, when the routes are built.
    fn require_scopes<R, I>(self, auth: &AuthLayer<R>, scopes: I) -> Self
    where
        R: Responder<axum::body::Body> + Clone,
        I: IntoIterator,
        I::Item: AsRef<str>;

    /// Requires **at least one** scope in `scopes` (documented as one
    /// security alternative per scope); otherwise as
    /// [`ScopedRoute::require_scopes`].
    fn require_any_scope<R, I>(self, auth: &AuthLayer<R>, scopes: I) -> Self
    where
        R: Responder<axum::body::Body> + Clone,
        I: IntoIterator,
        I::Item: AsRef<str>;
}

impl<S> ScopedRoute for UtoipaMethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn require_scopes<R, I>(self, auth: &AuthLayer<R>, scopes: I) -> Self
    where
        R: Responder<axum::body::Body> + Clone,
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        protect(self, auth, scopes, ScopeMatch::All)
    }

    fn require_any_scope<R, I>(self, auth: &AuthLayer<R>, scopes: I) -> Self
    where
        R: Responder<axum::body::Body> + Clone,
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        protect(self, auth, scopes, ScopeMatch::Any)
    }
}

fn protect<S, R, I>(
    (mut schemas, mut paths, router): UtoipaMethodRouter<S>,
    auth: &AuthLayer<R>,
    scopes: I,
    mode: ScopeMatch,
) -> UtoipaMethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    R: Responder<axum::body::Body> + Clone,
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let scopes: Vec<String> = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect();
    let check = auth
        .try_require_scopes(&scopes, mode)
        .unwrap_or_else(|e| panic!("require_scopes: {e}"));
    let alternatives: Vec<Vec<String>> = match mode {
        ScopeMatch::All => vec![scopes],
        ScopeMatch::Any => scopes.into_iter().map(|s| vec![s]).collect(),
    };
    for_each_operation(&mut paths, |op| document(op, &alternatives));
    if !schemas.iter().any(|(name, _)| name == PROBLEM_SCHEMA) {
        schemas.push((PROBLEM_SCHEMA.to_owned(), problem_schema()));
    }
    (schemas, paths, router.layer(check))
}

fn for_each_operation(paths: &mut Paths, mut f: impl FnMut(&mut Operation)) {
    for item in paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            f(op);
        }
    }
}

/// Adds the requirement (one alternative per inner list) to `op`, and the
/// rejection responses it does not document yet.
fn document(op: &mut Operation, alternatives: &[Vec<String>]) {
    // Requirements already there AND these: every pair of alternatives,
    // merged.
    let before: Vec<Vec<String>> = op
        .security
        .take()
        .map(|reqs| reqs.iter().map(scopes_of).collect())
        .unwrap_or_else(|| vec![Vec::new()]);
    let mut security = Vec::new();
    for old in &before {
        for new in alternatives {
            let mut merged = old.clone();
            merged.extend(new.iter().cloned());
            merged.sort();
            merged.dedup();
            security.push(SecurityRequirement::new(SECURITY_SCHEME, merged));
        }
    }
    op.security = Some(security);
    // Answers to a token with a budget carry the RateLimit fields.
    for (status, response) in op.responses.responses.iter_mut() {
        if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
            for (name, header) in rate_limit_headers() {
                response.headers.entry(name).or_insert(RefOr::T(header));
            }
        }
    }
    for (status, response) in rejection_responses() {
        op.responses.responses.entry(status).or_insert(response);
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
fn rate_limit_headers() -> Vec<(String, utoipa::openapi::Header)> {
    let headers = json!({
        "RateLimit-Policy": {
            "description": "When the token has a request budget: `\"token\";q=<requests>;w=<seconds>` (draft-ietf-httpapi-ratelimit-headers-10).",
            "schema": {"type": "string"}
        },
        "RateLimit": {
            "description": "When the token has a request budget: `\"token\";r=<requests left now>;t=<seconds until the budget is full>`.",
            "schema": {"type": "string"}
        }
    });
    serde_json::from_value::<std::collections::BTreeMap<String, utoipa::openapi::Header>>(headers)
        .expect("valid OpenAPI headers")
        .into_iter()
        .collect()
}

/// The scopes of our scheme in a requirement.
fn scopes_of(req: &SecurityRequirement) -> Vec<String> {
    let value = serde_json::to_value(req).unwrap_or_default();
    value[SECURITY_SCHEME]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn rejection_responses() -> Vec<(String, RefOr<Response>)> {
    let problem = json!({
        "application/problem+json": {
            "schema": {"$ref": format!("#/components/schemas/{PROBLEM_SCHEMA}")}
        }
    });
    let responses = [
        (
            "401",
            json!({
                "description": "Missing, malformed, unknown, revoked or expired token, or a suspended owner; or the request did not come over HTTPS.",
                "headers": {"WWW-Authenticate": {
                    "description": "The `Bearer` challenge, with `error=\"invalid_token\"` when a token was given.",
                    "schema": {"type": "string"}
                }},
                "content": problem,
            }),
        ),
        (
            "403",
            json!({
                "description": "The token is valid but lacks a required scope (`required_scopes` lists them), or may not be used from this client address (`error` is `address_not_allowed`: the token is restricted to networks its owner chose).",
                "headers": {"WWW-Authenticate": {
                    "description": "For a missing scope: the `Bearer` challenge with `error=\"insufficient_scope\"` and the required `scope`.",
                    "schema": {"type": "string"}
                }},
                "content": problem,
            }),
        ),
        (
            "429",
            json!({
                "description": "The token's request budget is spent (`rate_limited`), or this client address failed to authenticate too often (`too_many_failed_attempts`). Retry after `Retry-After` seconds.",
                "headers": {
                    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
                    "RateLimit-Policy": {"description": "The budget: `\"token\";q=<requests>;w=<seconds>`, or `\"failed-auth\";…` for failed attempts.", "schema": {"type": "string"}},
                    "RateLimit": {"description": "`\"token\";r=0;t=<seconds until the budget is full>`.", "schema": {"type": "string"}}
                },
                "content": problem,
            }),
        ),
        (
            "503",
            json!({
                "description": "The token store is unavailable: try again later. The request was not authenticated.",
                "headers": {"Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"}
                }},
                "content": problem,
            }),
        ),
    ];
    responses
        .into_iter()
        .map(|(status, value)| {
            let response: Response =
                serde_json::from_value(value).expect("a valid OpenAPI response object");
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
}

/// The RFC 9457 problem document the default responder writes.
fn problem_schema() -> RefOr<Schema> {
    let schema = json!({
        "type": "object",
        "description": "RFC 9457 problem details, as tower-pat answers a rejected request.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "A URI naming the problem."},
            "title": {"type": "string"},
            "status": {"type": "integer", "format": "int32"},
            "detail": {"type": "string", "description": "What a legitimate client can do about it."},
            "error": {
                "type": "string",
                "description": "The error code: RFC 6750's, or tower-pat's for HTTPS, availability, allowlists and budgets.",
                "enum": ["invalid_request", "invalid_token", "insufficient_scope", "https_required", "temporarily_unavailable", "address_not_allowed", "rate_limited", "too_many_failed_attempts"]
            },
            "required_scopes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "For 403: the scopes the route requires."
            }
        }
    });
    RefOr::T(serde_json::from_value(schema).expect("a valid OpenAPI schema"))
}

/// A [`utoipa::Modify`] adding the HTTP bearer security scheme
/// [`SECURITY_SCHEME`], its `bearerFormat` naming the token format
/// (`nvl_live_<72 hex>`), and a table of the catalog's scopes in its
/// description.
#[derive(Debug, Clone)]
pub struct BearerSecurity {
    format: String,
    description: String,
}

impl BearerSecurity {
    /// The scheme for tokens of `config` (its format and scope catalog).
    pub fn new(config: &TokenConfig) -> Self {
        let format = config.format();
        let mut description = format!(
            "A personal access token: `Authorization: Bearer {}_{}_…` ({} characters). \
             Requests must use HTTPS. Each operation lists the scopes it requires.\n\n\
             | Scope | Allows |\n|---|---|\n",
            format.prefix(),
            format.environment().as_str(),
            format.token_len(),
        );
        for entry in config.catalog().entries() {
            let soon = if entry.grantable {
                ""
            } else {
                " (coming soon)"
            };
            let _ = writeln!(
                description,
                "| `{}` | {}{} |",
                entry.scope.as_str(),
                entry.description.replace('|', "\\|"),
                soon
            );
        }
        Self {
            format: format!(
                "{}_{}_<72 lowercase hex>",
                format.prefix(),
                format.environment().as_str()
            ),
            description,
        }
    }
}

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, api: &mut OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format(self.format.clone())
            .description(Some(self.description.clone()))
            .build();
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(SECURITY_SCHEME, SecurityScheme::Http(scheme));
    }
}
