//! Operator actions (`Input::Operator`, from the admin CLI): cancel under the rules of an
//! `order.cancel` command, resolve an order flagged for attention, or run its next step
//! now. Each is recorded in the history with who and why and announced as an event.

use serde_json::json;

use super::builder::Builder;
use super::decide::cancel;
use super::*;

/// An action that would change nothing (resolving an order that is not flagged) is a
/// no-op; cancelling a cancelled order and retrying a closed one are refused.
pub(super) fn operator(
    d: &mut Builder,
    by: String,
    reason: String,
    action: OperatorAction,
) -> Result<(), Rejection> {
    let state = d.order.state;
    match action {
        OperatorAction::Cancel if state == OrderState::Cancelled => {
            return Err(Rejection::new(
                RejectCode::OrderClosed,
                "order is already cancelled".into(),
            ));
        }
        OperatorAction::Cancel => cancel(d, Some("cancelled_by_operator".into()))?,
        OperatorAction::Resolve => {
            let Some(was) = d.order.attention.take() else {
                return Ok(());
            };
            d.history("attention_resolved", json!({ "was": was }));
        }
        OperatorAction::RetryNow if state.is_terminal() => {
            return Err(Rejection::new(
                RejectCode::OrderClosed,
                format!("order is {}", state.as_str()),
            ));
        }
        OperatorAction::RetryNow => d.run_now(),
    }
    d.history(
        "operator_action",
        json!({ "action": action.as_str(), "by": by, "reason": reason }),
    );
    d.emit(EventKind::OperatorAction { action, by, reason });
    Ok(())
}
