//! `S3`: compare-and-swap objects on any S3-compatible server through aws-sdk-s3.
//!
//! The SDK's own retries are turned off: a retried conditional PUT whose first attempt did
//! land would fail its `If-Match` and be reported as a conflict although it was applied. The
//! caller (s3 mode's OCC loop) retries what is safe to retry, and reports the rest as
//! indeterminate.

use std::error::Error as _;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{Etag, Fetched, Object, ObjectError, ObjectStore, PutCondition};

/// How long to wait for a TCP connection to the object store.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one object-store call may take in all.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to reach the bucket.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL (`http://127.0.0.1:9000`); `None` means AWS' own endpoint for the region.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Static credentials; `None` uses the usual AWS chain (env vars, profile, ...).
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

/// An S3 bucket.
#[derive(Debug, Clone)]
pub struct S3 {
    client: Client,
    bucket: String,
    endpoint: String,
}

impl S3 {
    /// Connects, and creates the bucket if it does not exist.
    pub async fn connect(options: S3Options) -> Result<Self, ObjectError> {
        let s3 = Self::client(options).await;
        s3.ensure_bucket().await?;
        s3.probe_conditional_writes().await?;
        Ok(s3)
    }

    /// Connects to a bucket that must exist already: never creates one (`valthree s3-check`,
    /// where a misspelt name must not become a new, empty bucket).
    pub async fn connect_existing(options: S3Options) -> Result<Self, ObjectError> {
        let s3 = Self::client(options).await;
        if let Err(e) = s3.client.head_bucket().bucket(&s3.bucket).send().await {
            let status = match &e {
                SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
                _ => None,
            };
            let why = match status {
                Some(404) => format!(
                    "bucket {} does not exist at {} (it is not created: check the name)",
                    s3.bucket, s3.endpoint
                ),
                Some(403) => format!("access to bucket {} at {} is denied (403)", s3.bucket, s3.endpoint),
                _ => format!("bucket {} at {}: {}", s3.bucket, s3.endpoint, DisplayErrorContext(&e)),
            };
            return Err(ObjectError::Unavailable(why));
        }
        Ok(s3)
    }

    async fn client(options: S3Options) -> Self {
        let shared =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(options.region.clone())).load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .time_source(NodeClock)
            .force_path_style(true)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(OPERATION_TIMEOUT).build(),
            );
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if let (Some(ak), Some(sk)) = (&options.access_key, &options.secret_key) {
            config = config.credentials_provider(Credentials::new(ak, sk, None, None, "valthree-flags"));
        }
        Self {
            client: Client::from_conf(config.build()),
            bucket: options.bucket,
            endpoint: options.endpoint.unwrap_or_else(|| format!("aws:{}", options.region)),
        }
    }

    /// Refuses a server that ignores conditional headers: on it every compare-and-swap
    /// would silently succeed and concurrent writers would lose updates.
    async fn probe_conditional_writes(&self) -> Result<(), ObjectError> {
        // A key of its own, so nodes starting together do not disturb each other's probe.
        let key = &format!(".valthree-conditional-write-probe-{:016x}", fastrand::u64(..));
        let body = || Bytes::from_static(b"probe");
        let bogus = PutCondition::IfMatch(Etag("\"00000000000000000000000000000000\"".into()));
        let first = self.put(key, body(), PutCondition::IfAbsent).await;
        let absent = self.put(key, body(), PutCondition::IfAbsent).await;
        let mismatch = self.put(key, body(), bogus).await;
        let _ = self.client.delete_object().bucket(&self.bucket).key(key).send().await;
        match (first, absent, mismatch) {
            (
                Ok(_) | Err(ObjectError::PreconditionFailed),
                Err(ObjectError::PreconditionFailed),
                Err(ObjectError::PreconditionFailed),
            ) => Ok(()),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) if !matches!(e, ObjectError::PreconditionFailed) => Err(e),
            _ => Err(ObjectError::Unavailable(format!(
                "{} ignores If-Match/If-None-Match: compare-and-swap is impossible, refusing to start",
                self.endpoint
            ))),
        }
    }

    async fn ensure_bucket(&self) -> Result<(), ObjectError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx))
                if ctx.err().is_bucket_already_owned_by_you() || ctx.err().is_bucket_already_exists() =>
            {
                Ok(())
            }
            Err(e) => {
                Err(ObjectError::Unavailable(format!("create bucket {}: {}", self.bucket, DisplayErrorContext(&e))))
            }
        }
    }
}

/// True when the error chain shows the connection was refused: nothing was sent.
fn connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Classifies an SDK failure. `write` says whether the call could have changed anything.
fn classify<E, R>(err: SdkError<E, R>, write: bool) -> ObjectError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static + HasStatus,
{
    let text = DisplayErrorContext(&err).to_string();
    let maybe_applied = |text: String| {
        if write { ObjectError::Indeterminate(text) } else { ObjectError::Unavailable(text) }
    };
    match &err {
        SdkError::ServiceError(ctx) => match ctx.raw().status() {
            412 => ObjectError::PreconditionFailed,
            409 => ObjectError::Conflict,
            // If-Match on a missing object is 404; a missing bucket is no conflict to retry.
            404 if write && ctx.err().code() != Some("NoSuchBucket") => ObjectError::PreconditionFailed,
            500..=599 => maybe_applied(text),
            _ => ObjectError::Unavailable(text),
        },
        SdkError::ConstructionFailure(_) => ObjectError::Unavailable(text),
        SdkError::DispatchFailure(_) if err.source().is_some_and(connection_refused) => ObjectError::Unavailable(text),
        _ => maybe_applied(text),
    }
}

/// The HTTP status of a raw response (lets `classify` stay generic over operations).
trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

#[async_trait]
impl ObjectStore for S3 {
    async fn get(&self, key: &str) -> Result<Option<Object>, ObjectError> {
        // The SDK's operation timeout ends with the response headers; bound the body too.
        tokio::time::timeout(OPERATION_TIMEOUT, self.get_whole(key))
            .await
            .map_err(|_| ObjectError::Unavailable(format!("GET {key} took longer than {OPERATION_TIMEOUT:?}")))?
    }

    async fn get_if_changed(&self, key: &str, known: &Etag) -> Result<Fetched, ObjectError> {
        tokio::time::timeout(OPERATION_TIMEOUT, self.get_whole_if_changed(key, Some(known)))
            .await
            .map_err(|_| ObjectError::Unavailable(format!("GET {key} took longer than {OPERATION_TIMEOUT:?}")))?
    }

    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<Etag, ObjectError> {
        self.put_once(key, body, condition).await
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(|e| classify(e, true))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("s3://{}@{}", self.bucket, self.endpoint)
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{key} (at {})", self.bucket, self.endpoint)
    }
}

impl S3 {
    async fn get_whole(&self, key: &str) -> Result<Option<Object>, ObjectError> {
        match self.get_whole_if_changed(key, None).await? {
            Fetched::Current(object) => Ok(object),
            Fetched::Unchanged => Err(ObjectError::Unavailable("GET answered 304 to no condition".into())),
        }
    }

    /// GET, with `If-None-Match: known` when given (304: unchanged).
    async fn get_whole_if_changed(&self, key: &str, known: Option<&Etag>) -> Result<Fetched, ObjectError> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(known) = known {
            request = request.if_none_match(known.0.clone());
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(SdkError::ServiceError(ctx)) if ctx.err().is_no_such_key() => return Ok(Fetched::Current(None)),
            Err(SdkError::ServiceError(ctx)) if known.is_some() && ctx.raw().status().as_u16() == 304 => {
                return Ok(Fetched::Unchanged);
            }
            Err(e) => return Err(classify(e, false)),
        };
        // Without an ETag a version cannot be named, and caches keyed by it would go stale.
        let etag = Etag(output.e_tag().filter(|e| !e.is_empty()).ok_or_else(|| missing_etag("GET"))?.to_owned());
        if known == Some(&etag) {
            return Ok(Fetched::Unchanged); // a server that ignores If-None-Match
        }
        let body =
            output.body.collect().await.map_err(|e| ObjectError::Unavailable(format!("read body: {e}")))?.into_bytes();
        Ok(Fetched::Current(Some(Object { body, etag })))
    }

    async fn put_once(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<Etag, ObjectError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match condition {
            PutCondition::IfMatch(etag) => request.if_match(etag.0),
            PutCondition::IfAbsent => request.if_none_match("*"),
        };
        let output = request.send().await.map_err(|e| classify(e, true))?;
        match output.e_tag().filter(|e| !e.is_empty()) {
            Some(etag) => Ok(Etag(etag.to_owned())),
            // Written, but the new version cannot be named: the caller must not assume it.
            None => Err(ObjectError::Indeterminate("the object store answered PUT without an ETag".into())),
        }
    }
}

fn missing_etag(call: &str) -> ObjectError {
    ObjectError::Unavailable(format!("the object store answered {call} without an ETag"))
}

/// The time the client signs its requests with: the node's one wall clock
/// ([`crate::node::clock`]), so that an injected skew skews them as a real one would (S3
/// refuses a request signed more than 15 minutes off: `RequestTimeTooSkewed`).
#[derive(Debug)]
struct NodeClock;

impl aws_smithy_async::time::TimeSource for NodeClock {
    fn now(&self) -> std::time::SystemTime {
        crate::node::clock::now()
    }
}
