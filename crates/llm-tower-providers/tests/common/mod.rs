//! A scripted HTTP/1.1 server on 127.0.0.1:0 that speaks like a provider: it records every
//! request and answers with a reply chosen by a closure (full bodies, SSE chunks, gzip,
//! a cut connection, or a stall).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

pub mod aws;

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a chunked body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The body ends properly.
    Clean,
    /// The connection is cut (chunked body never terminated).
    Abort,
    /// The server stops sending but keeps the connection open.
    Stall,
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub chunks: Vec<Bytes>,
    pub end: End,
    /// Never send the response head.
    pub stall_head: bool,
    /// Send as one body with a content-length.
    pub full: bool,
}

impl Reply {
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            chunks: vec![body.into()],
            end: End::Clean,
            stall_head: false,
            full: true,
        }
    }

    pub fn json(status: u16, body: Value) -> Reply {
        Reply::bytes(
            status,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply::bytes(status, "text/plain", body.to_owned())
    }

    /// Each string is sent as its own chunk, as is.
    pub fn sse_raw<S: AsRef<str>>(chunks: &[S]) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: chunks
                .iter()
                .map(|c| Bytes::from(c.as_ref().to_owned()))
                .collect(),
            end: End::Clean,
            stall_head: false,
            full: false,
        }
    }

    /// `data: {..}\n\n` events, one chunk each.
    pub fn sse_data<S: AsRef<str>>(datas: &[S]) -> Reply {
        let chunks: Vec<String> = datas
            .iter()
            .map(|d| format!("data: {}\n\n", d.as_ref()))
            .collect();
        Reply::sse_raw(&chunks)
    }

    /// `event: {type}\ndata: {..}\n\n` events as Anthropic sends them.
    pub fn sse_events(events: &[(&str, String)]) -> Reply {
        let chunks: Vec<String> = events
            .iter()
            .map(|(t, d)| format!("event: {t}\ndata: {d}\n\n"))
            .collect();
        Reply::sse_raw(&chunks)
    }

    pub fn stall() -> Reply {
        Reply {
            stall_head: true,
            ..Reply::text(200, "")
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn ending(mut self, end: End) -> Reply {
        self.end = end;
        self.full = false;
        self
    }

    /// Gzips the whole body into one chunk and sets `content-encoding: gzip`.
    pub fn gzip(mut self) -> Reply {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for c in &self.chunks {
            enc.write_all(c).unwrap();
        }
        self.chunks = vec![Bytes::from(enc.finish().unwrap())];
        self.headers
            .push(("content-encoding".into(), "gzip".into()));
        self
    }

    /// Splits the body into chunks of `n` bytes.
    pub fn split_every(mut self, n: usize) -> Reply {
        let all: Vec<u8> = self.chunks.iter().flat_map(|c| c.to_vec()).collect();
        self.chunks = all.chunks(n).map(Bytes::copy_from_slice).collect();
        self.full = false;
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl TestServer {
    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("no request received")
    }
}

/// Starts a server on 127.0.0.1:0 answering every request with `handler`.
pub async fn serve<F>(handler: F) -> TestServer
where
    F: Fn(&Recorded) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let handler: Arc<Handler> = Arc::new(handler);
    let recs = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let recs = recs.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    let recs = recs.clone();
                    async move { Ok::<_, Infallible>(respond(req, &*handler, &recs).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestServer { addr, requests }
}

type Body = StreamBody<BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>>;

async fn respond(
    req: Request<Incoming>,
    handler: &Handler,
    recs: &Mutex<Vec<Recorded>>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let rec = Recorded {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    let reply = handler(&rec);
    recs.lock().unwrap().push(rec);
    if reply.stall_head {
        std::future::pending::<()>().await;
    }
    let total: usize = reply.chunks.iter().map(Bytes::len).sum();
    let frames = stream::iter(
        reply
            .chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Frame::data(c))),
    );
    let body: BoxStream<'static, _> = match reply.end {
        End::Clean => frames.boxed(),
        End::Abort => frames
            .chain(stream::once(async {
                // Let hyper flush what was sent before the connection is cut.
                tokio::task::yield_now().await;
                Err(std::io::Error::other("connection cut by test"))
            }))
            .boxed(),
        End::Stall => frames.chain(stream::pending()).boxed(),
    };
    let mut resp = Response::new(StreamBody::new(body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (k, v) in &reply.headers {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    if reply.full {
        resp.headers_mut()
            .insert("content-length", HeaderValue::from(total));
    }
    resp
}

/// Collects a stream, failing the test (instead of hanging it) if it never ends.
pub async fn collect(
    stream: llm_tower_core::ChatStream,
) -> Vec<Result<llm_tower_core::ChatChunk, llm_tower_core::Error>> {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.collect::<Vec<_>>(),
    )
    .await
    .expect("the stream hung")
}

/// Runs a future, failing the test if it takes more than 10 s (a hang guard, not a wait).
pub async fn guard<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(10), f)
        .await
        .expect("the call hung")
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
