//! Control endpoints for merchant callbacks: their settings, and the "the user has paid"
//! trigger of an on-ramp order.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{St, error_response};
use crate::Callbacks;
use crate::state::ApiError;

/// `GET /sandbox/callbacks`.
pub(super) async fn get_settings(State(s): St) -> Response {
    axum::Json(s.world().callbacks.clone()).into_response()
}

/// `PUT /sandbox/callbacks`: replaces the settings (missing fields take their defaults).
pub(super) async fn put_settings(State(s): St, body: Bytes) -> Response {
    let Ok(callbacks) = serde_json::from_slice::<Callbacks>(&body) else {
        return error_response(&ApiError::bad_request("invalid Callbacks JSON"));
    };
    if let Err(err) = callbacks.validate() {
        return error_response(&ApiError::bad_request(err.to_string()));
    }
    s.world().callbacks = callbacks.clone();
    axum::Json(callbacks).into_response()
}

/// `POST /sandbox/onramp/{order_id}/pay`: `{"orderId", "status"}`, 404 for an unknown
/// order, 409 if it expired or is past `fiatPending`.
pub(super) async fn pay(State(s): St, Path(order_id): Path<String>) -> Response {
    match s.world().pay(&order_id, s.clock.now()) {
        Ok(order) => {
            axum::Json(json!({ "orderId": order.id, "status": order.status })).into_response()
        }
        Err(err) => error_response(&err),
    }
}
