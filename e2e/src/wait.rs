//! Polling with a generous deadline: tests wait for conditions, never assert on wall-clock time.

use std::future::Future;
use std::time::Duration;
use std::time::Instant;

use crate::E2eError;
use crate::Result;

/// Deadline for anything the operator should do "within seconds".
pub const CONVERGE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// Polls `check` until it returns `Ok(Some(value))`. `Ok(None)` and errors mean "not yet";
/// the last one is reported on timeout.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("nothing yet");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            return Err(E2eError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
