//! Which event types an endpoint receives: `*` (all), exact types such as
//! `order.status_changed`, or a prefix such as `order.*`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct EventTypes(Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event type filter {0:?}: use `*`, `order.*` or a type like `order.status_changed`")]
pub struct EventTypesError(String);

impl Default for EventTypes {
    fn default() -> Self {
        EventTypes(vec!["*".into()])
    }
}

impl TryFrom<Vec<String>> for EventTypes {
    type Error = EventTypesError;

    fn try_from(v: Vec<String>) -> Result<Self, Self::Error> {
        if v.is_empty() {
            return Ok(EventTypes::default());
        }
        for t in &v {
            let body = t.strip_suffix(".*").unwrap_or(t);
            let ok = t == "*"
                || (!body.is_empty()
                    && body
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                    && !body.starts_with('.')
                    && !body.ends_with('.'));
            if !ok {
                return Err(EventTypesError(t.clone()));
            }
        }
        Ok(EventTypes(v))
    }
}

impl From<EventTypes> for Vec<String> {
    fn from(e: EventTypes) -> Self {
        e.0
    }
}

impl EventTypes {
    /// Comma-separated, as given on the command line.
    pub fn parse_list(s: &str) -> Result<Self, EventTypesError> {
        EventTypes::try_from(
            s.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>(),
        )
    }

    pub fn matches(&self, event_type: &str) -> bool {
        self.0.iter().any(|f| {
            f == "*"
                || f == event_type
                || f.strip_suffix('*')
                    .is_some_and(|prefix| event_type.starts_with(prefix))
        })
    }

    pub fn as_list(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let all = EventTypes::default();
        assert!(all.matches("order.status_changed"));
        let some = EventTypes::parse_list("order.status_changed, order.utr_rejected").unwrap();
        assert!(some.matches("order.utr_rejected"));
        assert!(!some.matches("order.attention_needed"));
        let prefix = EventTypes::parse_list("order.*").unwrap();
        assert!(prefix.matches("order.attention_needed"));
        assert!(!prefix.matches("command.rejected"));
        assert_eq!(EventTypes::parse_list("").unwrap(), all);
        for bad in ["Order", "order.", ".x", "a b", "order.*.x"] {
            assert!(EventTypes::parse_list(bad).is_err(), "{bad}");
        }
    }
}
