//! The documented contract in `deploy/` agrees with the code (DESIGN §3).
//!
//! - `deploy/asyncapi.yaml`: its subjects, enums, event property names and required
//!   fields match the code; every documented command field is one rampd reads, and it is
//!   required in the document exactly when leaving it out gets the command refused.
//! - `deploy/examples/`: command examples are accepted, event examples round-trip through
//!   the event types unchanged.
//! - `deploy/rampd.example.toml`: loads, and names every key with its default.
//! - `deploy/nats/`: the stream and consumer definitions are the ones rampd creates.
//!
//! The YAML is read by text, relying on the document's plain layout: 2-space indents and
//! block lists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rampd::config::Config;
use rampd_domain::Direction;
use rampd_domain::command::{CommandName, RejectCode, parse_command, parse_ids};
use rampd_domain::event::{
    ATTENTION_NEEDED, COMMAND_REJECTED, CommandRejected, OPERATOR_ACTION, OrderEvent,
    STATUS_CHANGED, UTR_REJECTED, subject_suffix,
};
use rampd_domain::order::{CollectAccount, DepositInstructions, OrderState, PaymentInstructions};
use rampd_domain::values::{AmountLimits, ChainId, InrAmount, TokenSymbol};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example(name: &str) -> Value {
    serde_json::from_str(&read(&format!("examples/{name}")))
        .unwrap_or_else(|e| panic!("examples/{name}: {e}"))
}

fn set(items: impl IntoIterator<Item = impl Into<String>>) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

// ---------------------------------------------------------------------------------------
// Minimal YAML reading
// ---------------------------------------------------------------------------------------

struct Doc(String);

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines nested under the first `key:` line at exactly `ind` spaces.
fn block<'a>(lines: &[&'a str], ind: usize, key: &str) -> Vec<&'a str> {
    let head = format!("{}{key}:", " ".repeat(ind));
    let start = lines
        .iter()
        .position(|l| l.trim_end() == head)
        .unwrap_or_else(|| panic!("no block `{key}:` at indent {ind}"));
    lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > ind)
        .copied()
        .collect()
}

/// Mapping keys at exactly `ind` spaces.
fn keys(lines: &[&str], ind: usize) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| indent(l) == ind && !l.trim_start().starts_with('-'))
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

/// The items of a block list (`- x`) at its outermost level, unquoted.
fn items(lines: &[&str]) -> BTreeSet<String> {
    let Some(ind) = lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| indent(l))
    else {
        return BTreeSet::new();
    };
    lines
        .iter()
        .filter(|l| indent(l) == ind)
        .map(|l| {
            let item = l.trim().strip_prefix("- ").expect("a block list item");
            item.trim_matches('\'').trim_matches('"').to_string()
        })
        .collect()
}

impl Doc {
    fn load() -> Doc {
        Doc(read("asyncapi.yaml"))
    }

    fn lines(&self) -> Vec<&str> {
        self.0.lines().collect()
    }

    fn schema(&self, name: &str) -> Vec<&str> {
        let lines = self.lines();
        let components = block(&lines, 0, "components");
        let schemas = block(&components, 2, "schemas");
        block(&schemas, 4, name)
    }

    fn properties(&self, schema: &str) -> BTreeSet<String> {
        keys(&block(&self.schema(schema), 6, "properties"), 8)
    }

    fn required(&self, schema: &str) -> BTreeSet<String> {
        items(&block(&self.schema(schema), 6, "required"))
    }

    /// `enum:` of a schema (`property: None`) or of one of its properties.
    fn enumeration(&self, schema: &str, property: Option<&str>) -> BTreeSet<String> {
        let s = self.schema(schema);
        match property {
            None => items(&block(&s, 6, "enum")),
            Some(p) => items(&block(
                &block(&block(&s, 6, "properties"), 8, p),
                10,
                "enum",
            )),
        }
    }

    fn addresses(&self) -> BTreeSet<String> {
        self.0
            .lines()
            .filter_map(|l| l.trim().strip_prefix("address: "))
            .map(str::to_string)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Subjects and enums
// ---------------------------------------------------------------------------------------

const INTAKE_RS: &str = include_str!("../src/intake.rs");
const WRITE_RS: &str = include_str!("../src/storage/write.rs");
const CONFIG_RS: &str = include_str!("../src/config.rs");
const NATS_RS: &str = include_str!("../src/nats.rs");

const ORDER_EVENT_TYPES: [&str; 4] = [
    STATUS_CHANGED,
    ATTENTION_NEEDED,
    UTR_REJECTED,
    OPERATOR_ACTION,
];

/// The subject token that a rejected command's event goes under: `intake.rs` maps each
/// command to it, and the first token of the command name is what it must be.
fn rejection_direction(c: CommandName) -> &'static str {
    let dir = c.as_str().split('.').next().unwrap();
    let variant = format!("CommandName::{c:?}");
    let arm = format!("=> \"{dir}\"");
    assert!(
        INTAKE_RS
            .lines()
            .any(|l| l.contains(&variant) && l.contains(&arm)),
        "intake.rs no longer maps {variant} to the `{dir}` rejection subject"
    );
    dir
}

#[test]
fn every_subject_is_documented_and_nothing_else() {
    let mut expected = BTreeSet::new();
    for c in CommandName::ALL {
        expected.insert(format!("ramp.cmd.{{tenant}}.{}", c.as_str()));
        expected.insert(format!(
            "ramp.evt.{{tenant}}.{}.command_rejected",
            rejection_direction(c)
        ));
    }
    for t in ORDER_EVENT_TYPES {
        expected.insert(format!(
            "ramp.evt.{{tenant}}.{}.{}",
            Direction::Onramp.as_str(),
            subject_suffix(t)
        ));
    }
    expected.insert("ramp.dlq.{original}".into());
    assert_eq!(Doc::load().addresses(), expected);

    // The code builds those subjects the way the document says.
    assert!(WRITE_RS.contains("\"ramp.evt.{tenant}.{}.{}\""));
    assert!(WRITE_RS.contains("\"ramp.evt.{}.{direction}.command_rejected\""));
    assert!(INTAKE_RS.contains("strip_prefix(\"ramp.cmd.\")"));
    assert!(INTAKE_RS.contains("format!(\"ramp.dlq.{rest}\")"));
    for header in ["Rampd-Dead-Letter-Reason", "Rampd-Original-Subject"] {
        assert!(INTAKE_RS.contains(&format!("\"{header}\"")), "{header}");
        assert!(Doc::load().0.contains(&format!("{header}:")), "{header}");
    }
    let doc = Doc::load().0;
    for subjects in [
        rampd::nats::CMD_SUBJECTS,
        rampd::nats::EVT_SUBJECTS,
        rampd::nats::DLQ_SUBJECTS,
    ] {
        assert!(doc.contains(&format!("`{subjects}`")), "{subjects}");
    }
}

/// Rejection codes in the code: command parse errors, the state machine's refusals and
/// the ones intake adds (string literals in `reject(…)` calls).
fn rejection_codes_in_code() -> BTreeSet<String> {
    set(RejectCode::ALL.map(|c| c.as_str()))
}

#[test]
fn enums_match_the_code() {
    let doc = Doc::load();
    assert_eq!(
        doc.enumeration("OrderState", None),
        set(OrderState::ALL.map(|s| s.as_str()))
    );
    assert_eq!(
        doc.enumeration("OrderEvent", Some("type")),
        set(ORDER_EVENT_TYPES)
    );
    assert_eq!(
        doc.enumeration("OrderEvent", Some("direction")),
        set([Direction::Onramp.as_str(), Direction::Offramp.as_str()])
    );
    assert_eq!(
        doc.enumeration("CommandRejected", Some("type")),
        set([COMMAND_REJECTED])
    );
    assert_eq!(
        doc.enumeration("CommandRejected", Some("command")),
        set(CommandName::ALL.map(|c| c.as_str()))
    );
    let codes = rejection_codes_in_code();
    assert!(codes.contains("order_not_found") && codes.contains("order_closed"));
    assert_eq!(doc.enumeration("RejectionCode", None), codes);
    assert_eq!(
        doc.enumeration("PaymentInstructions", Some("mode")),
        set(["INR_UPI", "INR_IMPS"])
    );
}

// ---------------------------------------------------------------------------------------
// Event schemas and examples
// ---------------------------------------------------------------------------------------

fn object_keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn keys_of(v: &impl serde::Serialize) -> BTreeSet<String> {
    object_keys(&serde_json::to_value(v).unwrap())
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Every field set: the document's properties. Every optional field empty: its required
/// fields (what rampd always sends). Struct literals without `..` make a new field a
/// compile error here, a reminder to document it.
#[test]
fn event_schemas_match_the_event_types() {
    let doc = Doc::load();
    let account = |bank_name: Option<String>| CollectAccount {
        account_name: "Collect Co".into(),
        account_number: "000099998888".into(),
        ifsc: "ABCD0123456".into(),
        bank_name,
    };
    let payment = |full: bool| PaymentInstructions {
        mode: "INR_IMPS".into(),
        amount: InrAmount::parse("1500.00").unwrap(),
        upi_deep_link: full.then(|| "upi://pay".into()),
        qr_string: full.then(|| "upi://pay".into()),
        bank: full.then(|| account(Some("Example Bank".into()))),
        expires_at: at("2025-06-01T13:00:00Z"),
    };
    let deposit = || DepositInstructions {
        address: "0x2222222222222222222222222222222222222222".into(),
        token: TokenSymbol::parse("USDT").unwrap(),
        chain_id: ChainId::new(137).unwrap(),
        token_amount: "25.5".parse().unwrap(),
        expires_at: at("2025-06-01T12:00:00Z"),
    };
    let event = |full: bool| OrderEvent {
        event_id: "e".into(),
        event_type: STATUS_CHANGED.into(),
        tenant: "acme".into(),
        direction: Direction::Onramp,
        order_id: "o".into(),
        rampd_order_id: "r".into(),
        sequence: 1,
        state: "awaiting_payment".into(),
        previous_state: full.then(|| "preparing".into()),
        occurred_at: at("2025-06-01T10:00:00Z"),
        fiat_amount: full.then(|| "1500.00".into()),
        token_amount: full.then(|| "16.9".into()),
        token: "USDT".into(),
        chain_id: 137,
        provider_order_id: full.then(|| "p".into()),
        provider_status: full.then(|| "fiatPending".into()),
        payment: full.then(|| payment(true)),
        deposit: full.then(|| deposit()),
        kyc_missing: full.then(|| vec!["DATE_OF_BIRTH".into()]),
        tx_hash: full.then(|| "0x".into()),
        deposit_tx_hash: full.then(|| "0x".into()),
        payout_reference: full.then(|| "NEFT1".into()),
        refund_address: full.then(|| "0x4".into()),
        predecessor_order_id: full.then(|| "p0".into()),
        successor_order_id: full.then(|| "s1".into()),
        reason: full.then(|| "why".into()),
        command_id: full.then(|| "c".into()),
    };
    assert_eq!(doc.properties("OrderEvent"), keys_of(&event(true)));
    assert_eq!(doc.required("OrderEvent"), keys_of(&event(false)));
    assert_eq!(
        doc.properties("PaymentInstructions"),
        keys_of(&payment(true))
    );
    assert_eq!(
        doc.required("PaymentInstructions"),
        keys_of(&payment(false))
    );
    assert_eq!(
        doc.properties("CollectAccount"),
        keys_of(&account(Some("b".into())))
    );
    assert_eq!(doc.required("CollectAccount"), keys_of(&account(None)));
    let rejected = CommandRejected {
        event_id: "e".into(),
        event_type: COMMAND_REJECTED.into(),
        tenant: "acme".into(),
        command: "onramp.utr".into(),
        command_id: "c".into(),
        order_id: "o".into(),
        code: "order_closed".into(),
        reason: "r".into(),
        occurred_at: at("2025-06-01T10:00:00Z"),
    };
    assert_eq!(doc.properties("CommandRejected"), keys_of(&rejected));
    assert_eq!(doc.required("CommandRejected"), keys_of(&rejected));
}

#[test]
fn event_examples_round_trip_unchanged() {
    let order_events = [
        (
            "event.status_changed.awaiting_payment.json",
            "awaiting_payment",
        ),
        ("event.status_changed.completed.json", "completed"),
    ];
    for (file, state) in order_events {
        let v = example(file);
        let e: OrderEvent =
            serde_json::from_value(v.clone()).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!(serde_json::to_value(&e).unwrap(), v, "{file}");
        assert_eq!(
            object_keys(&serde_json::to_value(&e).unwrap()),
            object_keys(&v)
        );
        assert_eq!(e.event_type, STATUS_CHANGED, "{file}");
        assert_eq!(OrderState::parse(&e.state).map(|s| s.as_str()), Some(state));
        if let Some(prev) = &e.previous_state {
            let prev = OrderState::parse(prev).expect("a documented state");
            assert!(
                prev.rank() < OrderState::parse(state).unwrap().rank(),
                "{file}"
            );
        }
        assert_eq!(
            e.payment.is_some(),
            state == OrderState::AwaitingPayment.as_str(),
            "{file}: payment instructions go only with awaiting_payment"
        );
    }
    let file = "event.command_rejected.json";
    let v = example(file);
    let r: CommandRejected = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(serde_json::to_value(&r).unwrap(), v, "{file}");
    assert_eq!(r.event_type, COMMAND_REJECTED);
    assert!(CommandName::parse(&r.command).is_some());
    assert!(rejection_codes_in_code().contains(&r.code), "{}", r.code);
}

// ---------------------------------------------------------------------------------------
// Command schemas and examples
// ---------------------------------------------------------------------------------------

const COMMAND_EXAMPLES: [(&str, CommandName); 4] = [
    ("onramp.create.upi.json", CommandName::OnrampCreate),
    ("onramp.create.imps.json", CommandName::OnrampCreate),
    ("onramp.utr.json", CommandName::OnrampUtr),
    ("order.cancel.json", CommandName::OrderCancel),
];

/// What intake does with a body: both steps must pass for the command to be carried out.
fn accepted(name: CommandName, body: &Value) -> bool {
    let bytes = body.to_string().into_bytes();
    parse_ids(&bytes).is_ok() && parse_command(name, &bytes, &AmountLimits::default()).is_ok()
}

/// For each documented property of `schema`, found in `body` at `path`: leaving it out
/// must be refused exactly when the document says it is required, and a value of the
/// wrong type must be refused (so rampd really reads it). Every key of the example must
/// be documented.
fn check_fields(doc: &Doc, name: CommandName, body: &Value, path: &[&str], schema: &str) {
    let props = doc.properties(schema);
    let required = doc.required(schema);
    assert!(
        required.is_subset(&props),
        "{schema}: required but undefined"
    );
    fn at_path<'v>(v: &'v mut Value, path: &[&str]) -> &'v mut serde_json::Map<String, Value> {
        let mut cur = v;
        for p in path {
            cur = &mut cur[*p];
        }
        cur.as_object_mut().expect("an object")
    }
    let mut probe = body.clone();
    let present = object_keys(&Value::Object(at_path(&mut probe, path).clone()));
    assert!(
        present.is_subset(&props),
        "{schema}: example fields {:?} are not documented",
        present.difference(&props).collect::<Vec<_>>()
    );
    for prop in &props {
        if present.contains(prop) {
            let mut without = body.clone();
            at_path(&mut without, path).remove(prop);
            assert_eq!(
                accepted(name, &without),
                !required.contains(prop),
                "{schema}.{prop}: documented as {}required",
                if required.contains(prop) { "" } else { "not " }
            );
        }
        let mut wrong = body.clone();
        at_path(&mut wrong, path).insert(prop.clone(), json!([]));
        assert!(
            !accepted(name, &wrong),
            "{schema}.{prop} is documented but rampd does not read it"
        );
    }
}

#[test]
fn command_examples_are_accepted() {
    for (file, name) in COMMAND_EXAMPLES {
        let body = example(file);
        let bytes = body.to_string().into_bytes();
        let ids = parse_ids(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(Some(ids.command_id.as_str()), body["command_id"].as_str());
        parse_command(name, &bytes, &AmountLimits::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn command_schemas_match_what_rampd_reads() {
    let doc = Doc::load();
    let upi = example("onramp.create.upi.json");
    let imps = example("onramp.create.imps.json");
    let create = CommandName::OnrampCreate;
    check_fields(&doc, create, &upi, &[], "OnrampCreate");
    check_fields(&doc, create, &imps, &[], "OnrampCreate");
    check_fields(&doc, create, &upi, &["user"], "User");
    check_fields(&doc, create, &imps, &["user"], "User");
    check_fields(&doc, create, &upi, &["payment"], "UpiPayment");
    check_fields(&doc, create, &imps, &["payment"], "ImpsPayment");
    let utr = example("onramp.utr.json");
    check_fields(&doc, CommandName::OnrampUtr, &utr, &[], "OnrampUtr");
    let cancel = example("order.cancel.json");
    check_fields(&doc, CommandName::OrderCancel, &cancel, &[], "OrderCancel");
    // The examples use obviously fake personal data.
    for v in [&upi, &imps] {
        assert!(
            v["user"]["email"]
                .as_str()
                .unwrap()
                .ends_with("@example.com")
        );
        assert_eq!(v["user"]["phone"], "9876543210");
    }
    assert_eq!(upi["user"]["pan"], "ABCDE1234F");
}

// ---------------------------------------------------------------------------------------
// Example configuration
// ---------------------------------------------------------------------------------------

/// `pub field: Type,` lines of `pub struct name { … }` in config.rs.
fn struct_fields(name: &str) -> Vec<String> {
    let start = CONFIG_RS
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("config.rs has no struct {name}"));
    CONFIG_RS[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != "}")
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(f, _)| f.to_string()))
        .collect()
}

/// `(table, key)` for every `key = value` line, also commented-out ones (`# key = …`).
fn toml_keys(text: &str) -> BTreeSet<(String, String)> {
    let mut table = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let l = line.trim().trim_start_matches('#').trim();
        if let Some(h) = l.strip_prefix('[') {
            table = h.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if let Some((k, _)) = l.split_once(" = ")
            && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            out.insert((table.clone(), k.to_string()));
        }
    }
    out
}

#[test]
fn example_config_loads_with_every_key_at_its_default() {
    let path = deploy_dir().join("rampd.example.toml");
    let cfg = Config::load(Some(&path)).expect("the example config loads");
    rampd::app::validate(&cfg).expect("the example config is valid");

    // The file alone, without environment overrides.
    let text = read("rampd.example.toml");
    let file: Config = toml::from_str(&text).unwrap();
    let def = Config::default();
    assert_eq!(file.database_url, def.database_url);
    assert_eq!(file.nats_url, def.nats_url);
    assert_eq!(file.worker_id, def.worker_id);
    assert_eq!(file.provider.name, def.provider.name);
    assert_eq!(file.provider.base_url, def.provider.base_url);
    assert_eq!(
        file.provider.api_key.expose_secret(),
        def.provider.api_key.expose_secret()
    );
    assert_eq!(file.provider.timeout_ms, def.provider.timeout_ms);
    assert_eq!(format!("{:?}", file.nats), format!("{:?}", def.nats));
    assert_eq!(file.orders.policy(), def.orders.policy());
    assert_eq!(file.orders.limits(), def.orders.limits());
    assert_eq!(
        format!("{:?}", file.executor),
        format!("{:?}", def.executor)
    );
    assert_eq!(
        format!("{:?}", file.webhooks),
        format!("{:?}", def.webhooks)
    );

    // Every key is there, commented out where its default cannot be written down.
    let found = toml_keys(&text);
    let tables = [
        ("Config", ""),
        ("ProviderConfig", "provider"),
        ("NatsConfig", "nats"),
        ("OnrampConfig", "onramp"),
        ("ExecutorConfig", "executor"),
        ("WebhookConfig", "webhooks"),
        ("EndpointConfig", "webhooks.endpoints"),
        ("AdminConfig", "admin"),
    ];
    assert_eq!(file.admin.listen, def.admin.listen);
    let table_fields = [
        "admin",
        "provider",
        "nats",
        "onramp",
        "executor",
        "webhooks",
        "endpoints",
    ];
    for (name, table) in tables {
        let fields = struct_fields(name);
        assert!(!fields.is_empty(), "{name}");
        for f in fields
            .iter()
            .filter(|f| !table_fields.contains(&f.as_str()))
        {
            assert!(
                found.contains(&(table.to_string(), f.clone())),
                "rampd.example.toml lacks `{f}` in [{table}]"
            );
        }
    }

    // The commented-out endpoint works when uncommented.
    let uncommented = text
        .replace("# [[webhooks", "[[webhooks")
        .replace("\n# id = ", "\nid = ");
    let uncommented = ["tenant", "url", "secret"]
        .iter()
        .fold(uncommented, |t, k| {
            t.replace(&format!("\n# {k} = "), &format!("\n{k} = "))
        });
    let with_endpoint: Config = toml::from_str(&uncommented).unwrap();
    assert_eq!(with_endpoint.webhooks.endpoints.len(), 1);
    rampd::webhooks::Endpoints::from_config(&with_endpoint.webhooks.endpoints)
        .expect("the example endpoint is valid");
}

// ---------------------------------------------------------------------------------------
// NATS stream and consumer definitions
// ---------------------------------------------------------------------------------------

fn nanos(secs: u64) -> u64 {
    secs * 1_000_000_000
}

#[test]
fn nats_definitions_match_the_topology_rampd_creates() {
    let def = Config::default().nats;
    // The retention periods are literals in `ensure_topology`.
    assert!(NATS_RS.contains("Duration::from_secs(7 * 24 * 3600)"));
    assert!(NATS_RS.contains("Duration::from_secs(30 * 24 * 3600)"));
    assert!(NATS_RS.contains("max_ack_pending: 1024,"));
    let week = 7 * 24 * 3600;
    let streams = [
        (&def.command_stream, rampd::nats::CMD_SUBJECTS, week),
        (&def.event_stream, rampd::nats::EVT_SUBJECTS, week),
        (
            &def.dead_letter_stream,
            rampd::nats::DLQ_SUBJECTS,
            30 * 24 * 3600,
        ),
    ];
    for (name, subjects, max_age) in streams {
        let v: Value = serde_json::from_str(&read(&format!("nats/{name}.json"))).unwrap();
        assert_eq!(v["name"], name.as_str());
        assert_eq!(v["subjects"], json!([subjects]));
        assert_eq!(v["storage"], "file");
        assert_eq!(v["max_age"], nanos(max_age), "{name}");
        assert_eq!(v["duplicate_window"], nanos(def.duplicate_window_secs));
    }
    let v: Value =
        serde_json::from_str(&read(&format!("nats/{}.consumer.json", def.consumer))).unwrap();
    assert_eq!(v["durable_name"], def.consumer.as_str());
    assert_eq!(v["ack_policy"], "explicit");
    assert_eq!(v["ack_wait"], def.ack_wait_ms * 1_000_000);
    assert_eq!(v["max_deliver"], def.max_deliver);
    assert_eq!(v["max_ack_pending"], 1024);
    assert!(v.get("filter_subject").is_none() && def.consumer_filter.is_none());
}
