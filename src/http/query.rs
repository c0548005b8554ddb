//! The query strings the routes take, as typed structs for actix-web's
//! `Query` extractor: `GET /actors?within_ms=N`,
//! `POST /members/{name}/recover?full=true` and
//! `POST /members/{name}/force-optimal?confirm=true`.

use super::ApiError;
use actix_web::error::QueryPayloadError;
use actix_web::http::StatusCode;
use actix_web::web;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// How long each actor may take to answer `GET /actors` before it is shown
/// as not answering (`?within_ms=` overrides it, up to [`MAX_ACTORS_WITHIN`]).
pub(super) const ACTORS_WITHIN: Duration = Duration::from_secs(1);
pub(super) const MAX_ACTORS_WITHIN: Duration = Duration::from_secs(30);

/// `GET /actors[?within_ms=N]`. Any other parameter is refused, so that a
/// misspelt one does not silently fall back to the default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActorsQuery {
    #[serde(default, deserialize_with = "positive_millis")]
    within_ms: Option<Duration>,
}

impl ActorsQuery {
    /// How long each actor gets to answer: `within_ms`, at most
    /// [`MAX_ACTORS_WITHIN`], or [`ACTORS_WITHIN`] when not given.
    pub(super) fn within(&self) -> Duration {
        self.within_ms.map_or(ACTORS_WITHIN, |d| d.min(MAX_ACTORS_WITHIN))
    }
}

/// Makes a malformed query a JSON 400 `{"error"}` like every other error
/// of the endpoint (for the routes that refuse unknown parameters).
pub(super) fn config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _req| ApiError::new(StatusCode::BAD_REQUEST, problem(&e)).into())
}

/// What is wrong with a query, without actix's "Query deserialize error: "
/// in front.
fn problem(e: &QueryPayloadError) -> String {
    match e {
        QueryPayloadError::Deserialize(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

fn positive_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    match text.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Some(Duration::from_millis(ms))),
        _ => Err(serde::de::Error::custom(format!(
            "within_ms: expected a positive number of milliseconds, got {text:?}"
        ))),
    }
}

/// `POST /members/{name}/recover[?full=true]`.
#[derive(Debug, Deserialize)]
pub(super) struct RecoverQuery {
    pub(super) full: Option<bool>,
}

/// `POST /members/{name}/force-optimal[?confirm=true]`. Any other
/// parameter is refused: a misspelt confirmation is said so, not taken
/// for a question.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForceQuery {
    pub(super) confirm: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(query: &str) -> Result<Duration, String> {
        web::Query::<ActorsQuery>::from_query(query)
            .map(|q| q.within())
            .map_err(|e| problem(&e))
    }

    #[test]
    fn force_query() {
        let confirm = |query| {
            web::Query::<ForceQuery>::from_query(query)
                .map(|q| q.confirm)
                .map_err(|e| problem(&e))
        };
        assert_eq!(confirm(""), Ok(None));
        assert_eq!(confirm("confirm=true"), Ok(Some(true)));
        assert_eq!(confirm("confirm=false"), Ok(Some(false)));
        assert_eq!(
            confirm("confrim=true"),
            Err("unknown field `confrim`, expected `confirm`".to_string())
        );
    }

    #[test]
    fn actors_query() {
        assert_eq!(within(""), Ok(ACTORS_WITHIN));
        assert_eq!(within("within_ms=250"), Ok(Duration::from_millis(250)));
        assert_eq!(within("within_ms=99999999"), Ok(MAX_ACTORS_WITHIN));
        assert_eq!(
            within("within_ms=0"),
            Err("within_ms: expected a positive number of milliseconds, got \"0\"".to_string())
        );
        assert_eq!(
            within("within_ms=x"),
            Err("within_ms: expected a positive number of milliseconds, got \"x\"".to_string())
        );
        assert_eq!(
            within("depth=3"),
            Err("unknown field `depth`, expected `within_ms`".to_string())
        );
    }
}

/// `POST /scrub[?from=TID&to=TID]`, each tid in 16 hex digits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScrubQuery {
    #[serde(default, with = "zeoraid_actors::tid::opt_hex")]
    pub from: Option<zeo::types::Tid>,
    #[serde(default, with = "zeoraid_actors::tid::opt_hex")]
    pub to: Option<zeo::types::Tid>,
}
