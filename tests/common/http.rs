//! The tests' one HTTP client for zeoraid's management endpoint (ureq,
//! no proxy, every status code answered rather than raised).

use serde_json::Value as Json;
use std::net::SocketAddr;
use std::time::Duration;

/// Bound for one HTTP request of the tests.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// An answer of the endpoint, whatever its status code.
pub struct Answer {
    pub code: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("HTTP {}: not JSON ({e}): {:?}", self.code, self.body))
    }

    /// The `{"error": ...}` of an error answer; panics unless it is one.
    pub fn error(&self) -> String {
        let json = self.json();
        let keys: Vec<&String> = json.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["error"], "an error answer is {{\"error\": ...}}: {json}");
        json["error"].as_str().expect("error is a string").to_string()
    }
}

/// `method path` on the endpoint at `addr`, with `Authorization: Bearer
/// token` when a token is given (POST only); panics when there is no
/// answer at all.
pub fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Answer {
    try_request(addr, method, path, token, HTTP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// [`request`] bounded by `timeout`: why there is no answer (refused,
/// timed out) instead of a panic.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Answer, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let url = format!("http://{addr}{path}");
    let result = match method {
        "POST" => {
            let mut request = agent.post(&url);
            if let Some(token) = token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            request.send_empty()
        }
        "GET" => {
            let mut request = agent.get(&url);
            if let Some(token) = token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            request.call()
        }
        "DELETE" => agent.delete(&url).call(),
        other => panic!("method {other}"),
    };
    let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let code = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok(Answer {
        code,
        content_type,
        body,
    })
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, None)
}
