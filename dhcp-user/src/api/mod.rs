//! The opt-in HTTP JSON API (`[api]`): the control socket's commands over HTTP/1.1, for
//! provisioning systems. One implementation answers both: every request becomes a
//! [`ControlRequest`] and is answered by [`crate::control::answer`].
//!
//! Every request carries `Authorization: Bearer <token>` (the first line of `token-file`),
//! compared in constant time; a wrong or missing one is answered 401. With `tls-certificate`
//! and `tls-private-key` the API speaks only TLS (rustls, ring). Bodies longer than
//! `max-request-size` are answered 413 without being read; at most `max-connections` are
//! served at once (the rest wait in the listen backlog); a connection that sends no complete
//! header within 10 s is closed. Errors are JSON: `{"error":{"code":"...","message":"..."}}`.
//!
//! ```text
//! POST   /v1/command          any control request, as the socket takes it: {"command":"usage"}
//! GET    /v1/leases?address=A | ?prefix=P/L | ?duid=D
//! POST   /v1/leases           {"address":"2001:db8:1::1:5","duid":"0003...","iaid":1}
//! PATCH  /v1/leases           {"address":"2001:db8:1::1:5","valid_lifetime":7200}
//! DELETE /v1/leases?address=A | ?prefix=P/L
//! GET    /v1/reservations
//! POST   /v1/reservations     {"subnet":1,"duid":"0003...","address":"2001:db8:1::50"}
//! DELETE /v1/reservations     {"subnet":1,"duid":"0003..."}
//! GET    /v1/usage | /v1/stats | /v1/bindings
//! POST   /v1/reload
//! ```

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::config::ApiConfig;
use crate::control::{answer, ControlRequest, ControlResponse, ErrorCode, Failure};
use crate::server::Server;

/// How long a client has to send a request's header (and to finish a TLS handshake).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the API's listener (`[api] listen`).
pub async fn bind_api(config: &ApiConfig) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the HTTP API on {} ([api] listen)", config.listen))
}

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve_api(
    server: Arc<Server>,
    reloader: Option<Arc<crate::reload::Reloader>>,
    config: ApiConfig,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tls = match &config.tls {
        Some(identity) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(identity, &[], crate::tls::ClientCertificates::Optional)
                .map_err(|err| anyhow::anyhow!("[api] tls-*: {err}"))?,
        )),
        None => None,
    };
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    info!(listen = %config.listen, tls = tls.is_some(), "HTTP API");
    loop {
        // A permit first: beyond the limit, connections wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit?,
            _ = shutdown.changed() => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "HTTP API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let server = server.clone();
        let reloader = reloader.clone();
        let config = config.clone();
        let tls = tls.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                let server = server.clone();
                let reloader = reloader.clone();
                let config = config.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        handle(&server, reloader.as_deref(), &config, request).await,
                    )
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let served = match tls {
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                debug!(%peer, error = %err, "HTTP API TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        served = connection => served,
                        _ = stop.changed() => Ok(()),
                    }
                }
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        served = connection => served,
                        _ = stop.changed() => Ok(()),
                    }
                }
            };
            if let Err(err) = served {
                debug!(%peer, error = %err, "HTTP API connection ended");
            }
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn json(status: StatusCode, body: &impl serde::Serialize) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Reply {
    let failure = Failure {
        code,
        message: message.into(),
    };
    json(status, &serde_json::json!({ "error": failure }))
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::NotSupported => StatusCode::NOT_IMPLEMENTED,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// True if `request` carries our bearer token (compared in constant time).
fn authorised(config: &ApiConfig, request: &Request<Incoming>) -> bool {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return false;
    };
    let Some(token) = value.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    bool::from(token.trim_ascii().ct_eq(&config.token.0))
}

/// Why a request could not be turned into a command: the answer (boxed, to keep the
/// `Result`s small).
struct Refusal(Box<Reply>);

impl From<Reply> for Refusal {
    fn from(reply: Reply) -> Self {
        Refusal(Box::new(reply))
    }
}

async fn handle(
    server: &Server,
    reloader: Option<&crate::reload::Reloader>,
    config: &ApiConfig,
    request: Request<Incoming>,
) -> Reply {
    if !authorised(config, &request) {
        let mut reply = error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::BadRequest,
            "a valid `Authorization: Bearer <token>` header is required",
        );
        reply
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return reply;
    }
    let command = match command_of(config, request).await {
        Ok(command) => command,
        Err(Refusal(reply)) => return *reply,
    };
    debug!(?command, "HTTP API request");
    match answer(server, reloader, command).await {
        ControlResponse::Failed(failure) => json(
            status_of(failure.code),
            &serde_json::json!({ "error": failure }),
        ),
        ControlResponse::Error(message) => {
            error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
        }
        response => json(StatusCode::OK, &response),
    }
}

/// The control request an HTTP request stands for.
async fn command_of(
    config: &ApiConfig,
    request: Request<Incoming>,
) -> Result<ControlRequest, Refusal> {
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let query = Query::parse(request.uri().query().unwrap_or(""));
    let lease_key = |query: &Query| -> Result<(Option<Ipv6Addr>, Option<String>), Refusal> {
        let address = match query.get("address") {
            Some(text) => Some(text.parse::<Ipv6Addr>().map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadRequest,
                    format!("address: `{text}` is not an IPv6 address"),
                )
            })?),
            None => None,
        };
        Ok((address, query.get("prefix").map(str::to_owned)))
    };
    Ok(match (&method, path.as_str()) {
        (&Method::POST, "/v1/command") => body(config, request).await?,
        (&Method::GET, "/v1/leases") => {
            let (address, prefix) = lease_key(&query)?;
            ControlRequest::LeaseGet {
                address,
                prefix,
                duid: query.get("duid").map(str::to_owned),
            }
        }
        (&Method::POST, "/v1/leases") => ControlRequest::LeaseAdd(body(config, request).await?),
        (&Method::PATCH, "/v1/leases") => ControlRequest::LeaseUpdate(body(config, request).await?),
        (&Method::DELETE, "/v1/leases") => {
            let (address, prefix) = lease_key(&query)?;
            ControlRequest::LeaseDelete { address, prefix }
        }
        (&Method::GET, "/v1/reservations") => ControlRequest::ReservationList,
        (&Method::POST, "/v1/reservations") => {
            ControlRequest::ReservationAdd(body(config, request).await?)
        }
        (&Method::DELETE, "/v1/reservations") => {
            ControlRequest::ReservationDelete(body(config, request).await?)
        }
        (&Method::GET, "/v1/usage") => ControlRequest::Usage,
        (&Method::GET, "/v1/stats") => ControlRequest::Stats,
        (&Method::GET, "/v1/bindings") => ControlRequest::Bindings,
        (&Method::POST, "/v1/reload") => ControlRequest::Reload,
        (&Method::POST, "/v1/reconfigure") => {
            ControlRequest::Reconfigure(body(config, request).await?)
        }
        (
            _,
            "/v1/command" | "/v1/leases" | "/v1/reservations" | "/v1/usage" | "/v1/stats"
            | "/v1/bindings" | "/v1/reload" | "/v1/reconfigure",
        ) => {
            return Err(error(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadRequest,
                format!("{method} is not allowed on {path}"),
            )
            .into())
        }
        _ => {
            return Err(error(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("no such endpoint: {path}"),
            )
            .into())
        }
    })
}

/// The request's JSON body, at most `max-request-size` bytes (longer: 413, unread).
async fn body<T: DeserializeOwned>(
    config: &ApiConfig,
    request: Request<Incoming>,
) -> Result<T, Refusal> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            format!(
                "the body is longer than max-request-size ({} bytes)",
                config.max_request_size
            ),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > config.max_request_size as u64) {
        return Err(too_large().into());
    }
    let bytes = match Limited::new(request.into_body(), config.max_request_size)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => return Err(too_large().into()),
        Err(err) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("reading the body: {err}"),
            )
            .into())
        }
    };
    serde_json::from_slice(&bytes).map_err(|err| {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("bad JSON: {err}"),
        )
        .into()
    })
}

/// A query string's `key=value` pairs, percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(text: &str) -> Query {
        Query(
            text.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `%2F` and friends decoded (`+` is a space); a bad escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
