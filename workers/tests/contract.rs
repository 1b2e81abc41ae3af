//! The documented contract in `deploy/` agrees with the code (DESIGN §3).
//!
//! - `deploy/asyncapi.yaml`: its subjects (commands, events per direction, rejections),
//!   enums (commands, reject codes, order states overall and per direction, event types,
//!   provider statuses and the states they imply, off-ramp chains, tx hash examples per
//!   chain family), event property names and required fields match the code, enumerated
//!   from the code's own lists; every documented command field is one rampd reads, and it
//!   is required in the document exactly when leaving it out gets the command refused.
//! - The rules the document promises (late UTR → successor `<order_id>:successor`, both
//!   orders naming each other; a repeated UTR / tx hash is idempotent, a different one is
//!   refused; a reference of the other direction is `not_applicable`) hold in the order
//!   machine.
//! - `deploy/examples/`: every file is parsed by the real parsers: command examples are
//!   accepted, event examples round-trip through the event types unchanged and are
//!   consistent with their state and direction. Every command and event type has one.
//! - `deploy/rampd.example.toml`: loads, and names every key with its default.
//! - `deploy/nats/`: the stream and consumer definitions are the ones rampd creates.
//!
//! The YAML is read by text, relying on the document's plain layout: 2-space indents and
//! block lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use rampd::config::Config;
use rampd_domain::Direction;
use rampd_domain::chain_values::TxHash;
use rampd_domain::command::{
    Command, CommandLimits, CommandName, RejectCode, parse_command, parse_command_at, parse_ids,
};
use rampd_domain::event::{
    ATTENTION_NEEDED, COMMAND_REJECTED, CommandRejected, OPERATOR_ACTION, ORDER_EVENT_TYPES,
    OrderEvent, STATUS_CHANGED, SUCCESSOR_CREATED, TX_HASH_REJECTED, UTR_REJECTED, order_event,
    subject_suffix,
};
use rampd_domain::order::{
    self, CollectAccount, Ctx, DepositInstructions, EventKind, Input, OrderPolicy, OrderRequest,
    OrderState, PaymentInstructions, known_statuses,
};
use rampd_domain::values::{ChainFamily, ChainId, InrAmount, TokenSymbol, Utr};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

const DIRECTIONS: [Direction; 2] = [Direction::Onramp, Direction::Offramp];

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

/// Every file in `deploy/examples/`, sorted.
fn example_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(deploy_dir().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
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

/// The items of a block list (`- x`) at its outermost level, unquoted, in order.
fn list(lines: &[&str]) -> Vec<String> {
    let Some(ind) = lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| indent(l))
    else {
        return Vec::new();
    };
    lines
        .iter()
        .filter(|l| indent(l) == ind && !l.trim().is_empty())
        .map(|l| {
            let item = l.trim().strip_prefix("- ").expect("a block list item");
            item.trim_matches('\'').trim_matches('"').to_string()
        })
        .collect()
}

/// The items of a block list (`- x`) at its outermost level, unquoted.
fn items(lines: &[&str]) -> BTreeSet<String> {
    list(lines).into_iter().collect()
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

    /// `examples:` of one of a schema's properties, in order.
    fn examples(&self, schema: &str, property: &str) -> Vec<String> {
        let s = self.schema(schema);
        list(&block(
            &block(&block(&s, 6, "properties"), 8, property),
            10,
            "examples",
        ))
    }

    /// A `key: value` mapping directly under `key:` of a schema (e.g. `x-state`).
    fn mapping(&self, schema: &str, key: &str) -> BTreeMap<String, String> {
        block(&self.schema(schema), 6, key)
            .iter()
            .filter(|l| indent(l) == 8)
            .map(|l| {
                let (k, v) = l.trim().split_once(": ").expect("`key: value`");
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// The text of a schema's `description: |` block.
    fn description(&self, schema: &str) -> String {
        let s = self.schema(schema);
        let start = s
            .iter()
            .position(|l| l.trim_end() == "      description: |")
            .unwrap_or_else(|| panic!("{schema} has no `description: |`"));
        s[start + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent(l) > 6)
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every list item and `const:` value anywhere under `components.messages.<name>`.
    fn message_values(&self, name: &str) -> BTreeSet<String> {
        let lines = self.lines();
        let components = block(&lines, 0, "components");
        let messages = block(&components, 2, "messages");
        block(&messages, 4, name)
            .iter()
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix("- ").or_else(|| l.strip_prefix("const: "))
            })
            .map(str::to_string)
            .collect()
    }

    /// Channel addresses (`address:` lines of `channels`).
    fn addresses(&self) -> BTreeSet<String> {
        let lines = self.lines();
        block(&lines, 0, "channels")
            .iter()
            .filter(|l| indent(l) == 4)
            .filter_map(|l| l.trim().strip_prefix("address: "))
            .map(str::to_string)
            .collect()
    }
}
// ---------------------------------------------------------------------------------------
// Subjects and enums
// ---------------------------------------------------------------------------------------

const INTAKE_RS: &str = include_str!("../src/intake.rs");
/// Where the write path builds event subjects.
const PLAN_RS: &str = include_str!("../src/storage/plan.rs");
const CONFIG_RS: &str = include_str!("../src/config.rs");
const NATS_RS: &str = include_str!("../src/nats.rs");
const LANES_RS: &str = include_str!("../src/intake/lanes.rs");

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

/// The directions whose orders send an event type (its subject is
/// `ramp.evt.<tenant>.<direction>.<suffix>`). A new event type fails here until it is
/// placed; `order_machine_keeps_the_documented_promises` checks the one-direction types
/// against the order machine.
fn event_directions(event_type: &str) -> &'static [Direction] {
    match event_type {
        STATUS_CHANGED | ATTENTION_NEEDED | OPERATOR_ACTION => &DIRECTIONS,
        UTR_REJECTED | SUCCESSOR_CREATED => &[Direction::Onramp],
        TX_HASH_REJECTED => &[Direction::Offramp],
        other => panic!("event type {other} is new: say which directions send it"),
    }
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
        for d in event_directions(t) {
            expected.insert(format!(
                "ramp.evt.{{tenant}}.{}.{}",
                d.as_str(),
                subject_suffix(t)
            ));
        }
    }
    expected.insert("ramp.dlq.{original}".into());
    expected.extend(webhook_operation_subjects());
    assert_eq!(Doc::load().addresses(), expected);

    // The code builds those subjects the way the document says.
    assert!(PLAN_RS.contains("\"ramp.evt.{tenant}.{}.{}\""));
    assert!(PLAN_RS.contains("\"ramp.evt.{}.{direction}.command_rejected\""));
    assert_eq!(
        rampd::storage::write::event_subject("acme", Direction::Offramp, TX_HASH_REJECTED),
        "ramp.evt.acme.offramp.tx_hash_rejected"
    );
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

/// Rejection codes in the code: every code a `command_rejected` event can carry.
fn rejection_codes_in_code() -> BTreeSet<String> {
    set(RejectCode::ALL.map(|c| c.as_str()))
}

/// The chain families, each once (the match fails to compile when one is added).
const FAMILIES: [ChainFamily; 4] = [
    ChainFamily::Evm,
    ChainFamily::Tron,
    ChainFamily::Solana,
    ChainFamily::Bitcoin,
];

fn _every_family_is_listed(f: ChainFamily) {
    match f {
        ChainFamily::Evm | ChainFamily::Tron | ChainFamily::Solana | ChainFamily::Bitcoin => {}
    }
}

#[test]
fn enums_match_the_code() {
    let doc = Doc::load();
    assert_eq!(
        doc.enumeration("OrderState", None),
        set(OrderState::ALL.map(|s| s.as_str()))
    );
    for (schema, d) in [
        ("OnrampState", Direction::Onramp),
        ("OfframpState", Direction::Offramp),
    ] {
        assert_eq!(
            doc.enumeration(schema, None),
            set(OrderState::for_direction(d).iter().map(|s| s.as_str())),
            "{schema}"
        );
    }
    // The state list in OrderState's description names every state once.
    let described = doc.description("OrderState");
    for s in OrderState::ALL {
        assert_eq!(
            described.matches(&format!("- {}:", s.as_str())).count(),
            1,
            "OrderState description: {}",
            s.as_str()
        );
    }
    // The provider's status vocabularies and the states they imply.
    for (schema, d) in [
        ("OnrampProviderStatus", Direction::Onramp),
        ("OfframpProviderStatus", Direction::Offramp),
    ] {
        let code: BTreeMap<String, String> = known_statuses(d)
            .iter()
            .map(|(s, st)| (s.to_string(), st.as_str().to_string()))
            .collect();
        assert_eq!(doc.mapping(schema, "x-state"), code, "{schema}");
    }
    assert_eq!(
        doc.enumeration("OrderEvent", Some("type")),
        set(ORDER_EVENT_TYPES)
    );
    assert_eq!(
        doc.enumeration("OrderEvent", Some("direction")),
        set(DIRECTIONS.map(|d| d.as_str()))
    );
    assert_eq!(
        doc.enumeration("CommandRejected", Some("type")),
        set([COMMAND_REJECTED])
    );
    assert_eq!(
        doc.enumeration("CommandRejected", Some("command")),
        set(CommandName::ALL.map(|c| c.as_str()))
    );
    // Each `<direction>.command_rejected` message lists exactly the commands rejected there.
    for (message, dir) in [
        ("onrampCommandRejected", "onramp"),
        ("offrampCommandRejected", "offramp"),
        ("orderCommandRejected", "order"),
    ] {
        let listed: BTreeSet<String> = doc
            .message_values(message)
            .into_iter()
            .filter(|c| CommandName::parse(c).is_some())
            .collect();
        let expected = set(CommandName::ALL
            .into_iter()
            .filter(|c| rejection_direction(*c) == dir)
            .map(|c| c.as_str()));
        assert_eq!(listed, expected, "{message}");
    }
    let codes = rejection_codes_in_code();
    assert!(codes.contains("order_not_found") && codes.contains("order_closed"));
    assert_eq!(doc.enumeration("RejectionCode", None), codes);
    let described = doc.description("RejectionCode");
    for code in &codes {
        assert_eq!(
            described.matches(&format!("- {code}:")).count(),
            1,
            "RejectionCode description: {code}"
        );
    }
    let modes: BTreeSet<String> = ["onramp.create.upi.json", "onramp.create.imps.json"]
        .into_iter()
        .map(|f| match parse_example_command(f) {
            Command::CreateOnramp(r) => r.payment.provider_mode().to_string(),
            other => panic!("{f}: {other:?}"),
        })
        .collect();
    assert_eq!(doc.enumeration("PaymentInstructions", Some("mode")), modes);
    // Off-ramp chains: exactly those whose formats rampd knows.
    let mut chains: BTreeSet<String> = ChainId::KNOWN_EVM
        .iter()
        .map(|c| c.get().to_string())
        .collect();
    chains.extend([ChainId::TRON, ChainId::SOLANA, ChainId::BITCOIN].map(|c| c.get().to_string()));
    assert_eq!(doc.enumeration("OfframpCreate", Some("chain_id")), chains);
    for c in &chains {
        assert!(ChainId::parse(c).unwrap().family().is_some(), "{c}");
    }
}

/// The documented tx hash examples are one per chain family, in `FAMILIES` order, and
/// each is accepted for its family only where the formats differ.
#[test]
fn tx_hash_formats_match_the_parser() {
    let examples = Doc::load().examples("OfframpTxHash", "tx_hash");
    assert_eq!(examples.len(), FAMILIES.len());
    for (family, hash) in FAMILIES.into_iter().zip(&examples) {
        TxHash::parse(family, hash).unwrap_or_else(|e| panic!("{family:?} {hash}: {e}"));
    }
    // The formats the document tells apart: 0x only on EVM, base58 only on Solana.
    let [evm, tron, solana, bitcoin] = [0, 1, 2, 3].map(|i| examples[i].as_str());
    assert!(TxHash::parse(ChainFamily::Tron, evm).is_err());
    assert!(TxHash::parse(ChainFamily::Bitcoin, evm).is_err());
    assert!(TxHash::parse(ChainFamily::Evm, tron).is_err());
    assert!(TxHash::parse(ChainFamily::Evm, bitcoin).is_err());
    assert!(TxHash::parse(ChainFamily::Evm, solana).is_err());
    assert!(TxHash::parse(ChainFamily::Solana, tron).is_err());
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
        chain_id: full.then_some(137),
        provider: "onmeta".into(),
        provider_order_id: full.then(|| "p".into()),
        provider_status: full.then(|| "fiatPending".into()),
        payment: full.then(|| payment(true)),
        deposit: full.then(deposit),
        payout: full.then(|| rampd_domain::command::FiatPayout {
            amount: "25.00".parse().unwrap(),
            symbol: "USD".into(),
            transfer_method_id: "tm".into(),
        }),
        kyc_missing: full.then(|| vec!["DATE_OF_BIRTH".into()]),
        tx_hash: full.then(|| "0x".into()),
        deposit_tx_hash: full.then(|| "0x".into()),
        payout_reference: full.then(|| "NEFT1".into()),
        provider_transaction_id: full.then(|| "t".into()),
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
    // DepositInstructions has no optional field.
    assert_eq!(doc.properties("DepositInstructions"), keys_of(&deposit()));
    assert_eq!(doc.required("DepositInstructions"), keys_of(&deposit()));
    let payout = event(true).payout.unwrap();
    assert_eq!(doc.properties("PayoutInstructions"), keys_of(&payout));
    assert_eq!(doc.required("PayoutInstructions"), keys_of(&payout));
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

/// What an example file is, by its name: `event.<suffix>[.…].json` for events,
/// `<command name>[.…].json` for commands.
enum ExampleKind {
    Command(CommandName),
    OrderEvent(&'static str),
    Rejection,
    /// `event.webhook.<event>.json`: a webhook operational event.
    WebhookOperation,
}

fn example_kind(file: &str) -> ExampleKind {
    let stem = file
        .strip_suffix(".json")
        .unwrap_or_else(|| panic!("examples/{file}: not a .json file"));
    let mut parts = stem.split('.');
    let (first, second) = (parts.next().unwrap(), parts.next().unwrap_or(""));
    if first == "event" {
        if second == COMMAND_REJECTED.replace('.', "_") {
            return ExampleKind::Rejection;
        }
        if second == "webhook" {
            return ExampleKind::WebhookOperation;
        }
        let t = ORDER_EVENT_TYPES
            .into_iter()
            .find(|t| subject_suffix(t) == second)
            .unwrap_or_else(|| panic!("examples/{file}: no event type `{second}`"));
        return ExampleKind::OrderEvent(t);
    }
    let name = format!("{first}.{second}");
    ExampleKind::Command(
        CommandName::parse(&name).unwrap_or_else(|| panic!("examples/{file}: no command `{name}`")),
    )
}

#[test]
fn every_example_is_parsed_and_every_message_has_one() {
    let mut commands = BTreeSet::new();
    let mut events = BTreeSet::new();
    let mut rejections = 0;
    for file in example_files() {
        match example_kind(&file) {
            ExampleKind::Command(name) => {
                check_command_example(&file, name);
                commands.insert(name.as_str());
            }
            ExampleKind::OrderEvent(t) => {
                check_order_event_example(&file, t);
                events.insert(t);
            }
            ExampleKind::Rejection => {
                check_rejection_example(&file);
                rejections += 1;
            }
            ExampleKind::WebhookOperation => check_webhook_operation_example(&file),
        }
    }
    assert_eq!(commands, CommandName::ALL.map(|c| c.as_str()).into());
    assert_eq!(events, ORDER_EVENT_TYPES.into_iter().collect());
    assert!(rejections > 0);
}

fn check_order_event_example(file: &str, event_type: &str) {
    use OrderState::*;
    let v = example(file);
    let e: OrderEvent =
        serde_json::from_value(v.clone()).unwrap_or_else(|err| panic!("{file}: {err}"));
    let back = serde_json::to_value(&e).unwrap();
    assert_eq!(back, v, "{file}: does not round-trip unchanged");
    assert_eq!(e.event_type, event_type, "{file}");
    let d = e.direction;
    assert!(
        event_directions(event_type).contains(&d),
        "{file}: {event_type} is not sent for {} orders",
        d.as_str()
    );
    let state = OrderState::parse(&e.state).unwrap_or_else(|| panic!("{file}: state"));
    assert!(
        OrderState::for_direction(d).contains(&state),
        "{file}: state"
    );
    assert!(e.sequence >= 1, "{file}");
    match &e.previous_state {
        Some(prev) => {
            assert_eq!(event_type, STATUS_CHANGED, "{file}: previous_state");
            let prev = OrderState::parse(prev).expect("a documented state");
            assert!(OrderState::for_direction(d).contains(&prev), "{file}");
            assert!(prev != state && prev.rank() <= state.rank(), "{file}");
        }
        None if event_type == STATUS_CHANGED => {
            assert_eq!((state, e.sequence), (Preparing, 1), "{file}: first event")
        }
        None => {}
    }
    // Amounts: each direction always carries the amount its request fixed.
    match d {
        // A mint (no chain: the Partner API's requests name none) fixed its token amount.
        Direction::Onramp if e.chain_id.is_none() => {
            assert!(e.token_amount.is_some(), "{file}: a mint's token_amount");
            assert!(e.fiat_amount.is_none(), "{file}: a mint has no fiat amount");
        }
        Direction::Onramp => {
            let fiat = e.fiat_amount.as_deref().expect("on-ramp fiat_amount");
            InrAmount::parse(fiat).unwrap_or_else(|err| panic!("{file}: {err}"));
        }
        Direction::Offramp => assert!(e.token_amount.is_some(), "{file}: token_amount"),
    }
    // Instructions only while the user has to pay, in the direction's form.
    let awaiting = state == AwaitingPayment;
    assert_eq!(
        e.payment.is_some(),
        awaiting && d == Direction::Onramp,
        "{file}: payment goes only with an on-ramp awaiting_payment"
    );
    // The Partner API's orders name no chain (and have no deposit instructions: a redeem's
    // wallet is the tenant's own).
    let partner = e.chain_id.is_none();
    assert_eq!(
        e.deposit.is_some(),
        awaiting && d == Direction::Offramp && !partner,
        "{file}: deposit goes only with an off-ramp awaiting_payment"
    );
    assert_eq!(
        e.payout.is_some(),
        state == Processing && d == Direction::Offramp && partner,
        "{file}: payout goes only with a redeem's processing"
    );
    if let Some(dep) = &e.deposit {
        assert_eq!(Some(dep.chain_id.get()), e.chain_id, "{file}");
        assert_eq!(dep.token.as_str(), e.token, "{file}");
        assert_eq!(Some(dep.token_amount.to_string()), e.token_amount, "{file}");
    }
    if e.kyc_missing.is_some() {
        assert_eq!(state, KycRequired, "{file}: kyc_missing");
    }
    let offramp_only = [
        e.deposit_tx_hash.is_some(),
        e.payout_reference.is_some(),
        e.refund_address.is_some(),
    ];
    if offramp_only.contains(&true) {
        assert_eq!(d, Direction::Offramp, "{file}");
    }
    if let Some(hash) = &e.deposit_tx_hash {
        let family = match e.chain_id {
            Some(id) => ChainId::new(id).unwrap().family().unwrap(),
            None => ChainFamily::Evm, // the Partner API's ledger
        };
        let parsed = TxHash::parse(family, hash).unwrap();
        assert_eq!(
            parsed.as_str(),
            hash,
            "{file}: deposit_tx_hash is normalised"
        );
    }
    if state == Refunded {
        assert!(e.refund_address.is_some(), "{file}: refund_address");
    }
    if e.predecessor_order_id.is_some() {
        assert_eq!(d, Direction::Onramp, "{file}");
        assert!(e.order_id.ends_with(":successor"), "{file}");
    }
    if let Some(ps) = &e.provider_status
        && event_type == STATUS_CHANGED
    {
        let mint = e.chain_id.is_none();
        assert!(
            (mint && ps == rampd_domain::order::MINT_APPROVED)
                || (!mint && known_statuses(d).iter().any(|(s, _)| s == ps)),
            "{file}: provider_status {ps} is not a documented {} status",
            d.as_str()
        );
    }
    match event_type {
        STATUS_CHANGED => assert_eq!(
            e.reason.is_some(),
            state.is_terminal() && state != Completed,
            "{file}: reason"
        ),
        SUCCESSOR_CREATED => {
            assert_eq!(state, Expired, "{file}");
            assert!(e.reason.is_none() && e.command_id.is_some(), "{file}");
            let successor = e.successor_order_id.as_deref().expect("successor_order_id");
            // The successor's own example names this order back.
            let files = example_files();
            let theirs = files
                .iter()
                .map(|f| example(f))
                .find(|v| v["rampd_order_id"] == successor)
                .unwrap_or_else(|| panic!("{file}: no example of the successor's events"));
            assert_eq!(theirs["predecessor_order_id"], e.rampd_order_id.as_str());
            assert_eq!(theirs["order_id"], format!("{}:successor", e.order_id));
            assert_eq!(theirs["fiat_amount"], json!(e.fiat_amount));
        }
        _ => assert!(e.reason.is_some(), "{file}: reason"),
    }
}

fn check_rejection_example(file: &str) {
    let v = example(file);
    let r: CommandRejected = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(serde_json::to_value(&r).unwrap(), v, "{file}");
    assert_eq!(r.event_type, COMMAND_REJECTED);
    assert!(CommandName::parse(&r.command).is_some(), "{file}");
    assert!(rejection_codes_in_code().contains(&r.code), "{}", r.code);
}

// ---------------------------------------------------------------------------------------
// The rules the document promises
// ---------------------------------------------------------------------------------------

fn parse_example_command(file: &str) -> Command {
    let ExampleKind::Command(name) = example_kind(file) else {
        panic!("{file}: not a command example");
    };
    parse_command(
        name,
        example(file).to_string().as_bytes(),
        &CommandLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn request(file: &str) -> OrderRequest {
    match parse_example_command(file) {
        Command::CreateOnramp(r) => OrderRequest::Onramp(*r),
        Command::CreateOfframp(r) => OrderRequest::Offramp(*r),
        other => panic!("{file}: not a create: {other:?}"),
    }
}

fn event_of(o: &order::Order, kind: &EventKind) -> OrderEvent {
    order_event(o, 1, kind, "e".into(), at("2025-06-01T10:00:00Z"), None)
}

#[test]
fn order_machine_keeps_the_documented_promises() {
    let ctx = Ctx {
        now: at("2025-06-01T10:00:00Z"),
        jitter: 0.5,
        policy: OrderPolicy::default(),
    };
    let later = Ctx {
        now: ctx.now + Duration::days(2),
        ..ctx
    };
    let create = |file: &str, id: &str| {
        let provider = rampd_domain::provider::ProviderRef::default();
        order::create(Uuid::now_v7(), "acme", id, provider, request(file), &ctx).order
    };
    let on = create("onramp.create.upi.json", "acme-order-1003");
    let off = create("offramp.create.json", "acme-order-2001");

    // Each direction has its own payment-reference rejection event; the other
    // direction's reference is `not_applicable`.
    let refused = EventKind::PaymentRefRejected { reason: "r".into() };
    assert_eq!(event_of(&on, &refused).event_type, UTR_REJECTED);
    assert_eq!(event_of(&off, &refused).event_type, TX_HASH_REJECTED);
    let utr = |s: &str| Input::SubmitUtr {
        utr: Utr::parse(s).unwrap(),
    };
    let hash = |s: &str| Input::SubmitTxHash { hash: s.into() };
    let tx = example("offramp.txhash.json")["tx_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        order::decide(&off, utr("512345678901"), &ctx)
            .unwrap_err()
            .code,
        RejectCode::NotApplicable
    );
    assert_eq!(
        order::decide(&on, hash(&tx), &ctx).unwrap_err().code,
        RejectCode::NotApplicable
    );

    // Off-ramp: the documented hash fits the example's chain; the same hash again (in
    // another case) changes nothing; a different one, or a malformed one, is refused.
    let with_hash = order::decide(&off, hash(&tx), &ctx).unwrap().order;
    assert!(
        order::decide(
            &with_hash,
            hash(&tx.to_uppercase().replace("0X", "0x")),
            &ctx
        )
        .unwrap()
        .is_noop()
    );
    let other = format!("0x{}", "ab".repeat(32));
    assert_eq!(
        order::decide(&with_hash, hash(&other), &ctx)
            .unwrap_err()
            .code,
        RejectCode::TxHashAlreadySet
    );
    assert_eq!(
        order::decide(&off, hash(&tx[2..]), &ctx).unwrap_err().code,
        RejectCode::InvalidTxHash
    );

    // On-ramp: the same UTR again changes nothing; a different one is refused.
    let with_utr = order::decide(&on, utr("512345678901"), &ctx).unwrap().order;
    assert!(
        order::decide(&with_utr, utr("512345678901"), &ctx)
            .unwrap()
            .is_noop()
    );
    assert_eq!(
        order::decide(&with_utr, utr("512345678902"), &ctx)
            .unwrap_err()
            .code,
        RejectCode::UtrAlreadySet
    );

    // Late UTR: an order that expired unpaid hands the UTR to `<order_id>:successor`, a
    // new order for the same request, and the two name each other in their events.
    let expired = order::decide(&on, Input::DeadlinePassed, &later)
        .unwrap()
        .order;
    assert_eq!(expired.state, OrderState::Expired);
    let d = order::decide(&expired, utr("512345678901"), &later).unwrap();
    let successor = d.spawned.as_ref().expect("a successor order");
    assert_eq!(successor.order.client_order_id, "acme-order-1003:successor");
    assert_eq!(successor.order.request, expired.request);
    assert_eq!(d.order.state, OrderState::Expired);
    let [announced] = &d.events[..] else {
        panic!("one event: {:?}", d.events);
    };
    let e = event_of(&d.order, &announced.kind);
    assert_eq!(e.event_type, SUCCESSOR_CREATED);
    assert_eq!(e.successor_order_id, Some(successor.order.id.to_string()));
    let first = event_of(&successor.order, &successor.events[0].kind);
    assert_eq!(first.event_type, STATUS_CHANGED);
    assert_eq!(first.state, OrderState::Preparing.as_str());
    assert_eq!(first.predecessor_order_id, Some(expired.id.to_string()));
    assert_eq!(first.fiat_amount, e.fiat_amount);
    let repeat = order::decide(&d.order, utr("512345678901"), &later).unwrap();
    assert!(repeat.is_noop() && repeat.spawned.is_none());
    assert_eq!(
        order::decide(&d.order, utr("512345678902"), &later)
            .unwrap_err()
            .code,
        RejectCode::UtrAlreadySet
    );
}

// ---------------------------------------------------------------------------------------
// Command schemas and examples
// ---------------------------------------------------------------------------------------

/// What intake does with a body: both steps must pass for the command to be carried out.
fn accepted(name: CommandName, body: &Value) -> bool {
    let bytes = body.to_string().into_bytes();
    parse_ids(&bytes).is_ok() && parse_command_at(name, &bytes, &CommandLimits::default()).is_ok()
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

/// The document's schema of a command body, and of the objects nested in it.
fn command_schemas(name: CommandName, body: &Value) -> Vec<(Vec<&'static str>, &'static str)> {
    match name {
        CommandName::OnrampCreate => vec![
            (vec![], "OnrampCreate"),
            (vec!["user"], "User"),
            (
                vec!["payment"],
                match body["payment"]["mode"].as_str() {
                    Some("upi") => "UpiPayment",
                    Some("imps") => "ImpsPayment",
                    other => panic!("payment mode {other:?}"),
                },
            ),
        ],
        CommandName::OfframpCreate => vec![
            (vec![], "OfframpCreate"),
            (vec!["user"], "User"),
            (vec!["bank"], "PayoutAccount"),
        ],
        CommandName::MintCreate => vec![(vec![], "MintCreate")],
        CommandName::RedeemCreate => vec![(vec![], "RedeemCreate")],
        CommandName::RedeemPayout => vec![(vec![], "RedeemPayout")],
        CommandName::OnrampUtr => vec![(vec![], "OnrampUtr")],
        CommandName::OfframpTxHash => vec![(vec![], "OfframpTxHash")],
        CommandName::OrderCancel => vec![(vec![], "OrderCancel")],
    }
}

fn check_command_example(file: &str, name: CommandName) {
    let doc = Doc::load();
    let body = example(file);
    let bytes = body.to_string().into_bytes();
    let ids = parse_ids(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(Some(ids.command_id.as_str()), body["command_id"].as_str());
    parse_command(name, &bytes, &CommandLimits::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    for (path, schema) in command_schemas(name, &body) {
        check_fields(&doc, name, &body, &path, schema);
    }
    // The examples use obviously fake personal data.
    if let Some(user) = body.get("user") {
        assert!(
            user["email"].as_str().unwrap().ends_with("@example.com"),
            "{file}"
        );
        assert_eq!(user["phone"], "9876543210", "{file}");
        if let Some(pan) = user.get("pan") {
            assert_eq!(pan, "ABCDE1234F", "{file}");
        }
    }
}

#[test]
fn offramp_examples_fit_together() {
    let Command::CreateOfframp(create) = parse_example_command("offramp.create.json") else {
        panic!("offramp.create.json");
    };
    // EVM chain 137, with a payout account and a price limit.
    assert_eq!(create.chain_id.family(), Some(ChainFamily::Evm));
    assert_eq!(create.chain_id.get(), 137);
    assert!(create.max_price_change_pct.is_some());
    let family = create.chain_id.family().unwrap();
    let tx = example("offramp.txhash.json");
    assert_eq!(tx["order_id"], example("offramp.create.json")["order_id"]);
    TxHash::parse(family, tx["tx_hash"].as_str().unwrap()).expect("the example hash fits");
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
    assert_eq!(
        file.provider.api_secret.expose_secret(),
        def.provider.api_secret.expose_secret()
    );
    assert_eq!(
        file.provider.requests_per_sec,
        def.provider.requests_per_sec
    );
    assert_eq!(file.provider.replicas, def.provider.replicas);
    assert_eq!(
        format!("{:?}", file.callbacks),
        format!("{:?}", def.callbacks)
    );
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
        ("OrdersConfig", "orders"),
        ("ExecutorConfig", "executor"),
        ("WebhookConfig", "webhooks"),
        ("EndpointConfig", "webhooks.endpoints"),
        ("AdminConfig", "admin"),
        ("CallbacksConfig", "callbacks"),
        ("RetentionConfig", "retention"),
        ("PartnerProviderConfig", "providers.partner"),
        ("TenantConfig", "tenants.acme"),
    ];
    assert_eq!(file.admin.listen, def.admin.listen);
    assert_eq!(
        format!("{:?}", file.retention),
        format!("{:?}", def.retention)
    );
    let table_fields = [
        "admin",
        "callbacks",
        "provider",
        "nats",
        "orders",
        "executor",
        "webhooks",
        "endpoints",
        "retention",
        "providers",
        "tenants",
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

    // The section was `[onramp]` before off-ramp orders; that name still loads.
    assert!(text.contains("\n[orders]\n"));
    let old_name: Config = toml::from_str(&text.replace("\n[orders]\n", "\n[onramp]\n")).unwrap();
    assert_eq!(old_name.orders.policy(), file.orders.policy());
    assert_eq!(old_name.orders.limits(), file.orders.limits());

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

    // So does the commented-out Partner API provider and tenant default.
    let with_partner = [
        "[providers.partner]",
        "kind = ",
        "[tenants.acme]",
        "provider = ",
    ]
    .iter()
    .fold(text.clone(), |t, k| {
        t.replace(&format!("\n# {k}"), &format!("\n{k}"))
    });
    let with_partner: Config = toml::from_str(&with_partner).unwrap();
    rampd::app::install_crypto();
    let providers = rampd::providers::registry::Providers::from_config(&with_partner)
        .expect("the example providers are valid");
    let chosen = providers
        .choose("acme", rampd_domain::provider::RequestKind::Mint, None)
        .unwrap();
    assert_eq!(chosen.name.as_str(), "partner");
    rampd::app::validate(&with_partner).expect("still valid");
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
    assert!(LANES_RS.contains("max_ack_pending: 1024,"));
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
    // One consumer per tenant; the file shows tenant `acme`'s.
    let lane = rampd::intake::lanes::lane_of("ramp.cmd.acme.onramp.create").unwrap();
    let name = rampd::intake::lanes::durable_name(&def.consumer, &lane);
    let v: Value = serde_json::from_str(&read(&format!("nats/{name}.consumer.json"))).unwrap();
    assert_eq!(v["durable_name"], name.as_str());
    assert_eq!(v["filter_subject"], lane.as_str());
    assert_eq!(v["ack_policy"], "explicit");
    assert_eq!(v["ack_wait"], def.ack_wait_ms * 1_000_000);
    assert_eq!(v["max_deliver"], def.max_deliver);
    assert_eq!(v["max_ack_pending"], 1024);
    assert!(def.consumer_filter.is_none());
}

// ---------------------------------------------------------------------------------------
// Webhook operational events (issue 4)
// ---------------------------------------------------------------------------------------

use rampd_domain::webhooks::events::{
    DELIVERY_DEAD_LETTERED, DeliveryDeadLettered, DisabledReason, ENDPOINT_DISABLED,
    EndpointDisabled, WEBHOOK_TEST, WebhookTest,
};

fn webhook_operation_subjects() -> BTreeSet<String> {
    [DELIVERY_DEAD_LETTERED, ENDPOINT_DISABLED]
        .iter()
        .map(|t| rampd::webhooks::outcome::operational_subject("{tenant}", t))
        .collect()
}

#[test]
fn webhook_operation_events_match_the_document() {
    let doc = Doc::load();
    let dead = |full: bool| DeliveryDeadLettered {
        event_id: "e".into(),
        event_type: DELIVERY_DEAD_LETTERED.into(),
        tenant: "acme".into(),
        endpoint_id: "ep".into(),
        webhook_id: "msg_1".into(),
        rampd_order_id: "r".into(),
        delivery_event_type: STATUS_CHANGED.into(),
        attempts: 8,
        last_status: full.then_some(503),
        last_error: full.then(|| "HTTP 503".into()),
        occurred_at: at("2025-06-01T10:00:00Z"),
    };
    assert_eq!(
        doc.properties("WebhookDeliveryDeadLettered"),
        keys_of(&dead(true))
    );
    assert_eq!(
        doc.required("WebhookDeliveryDeadLettered"),
        keys_of(&dead(false))
    );
    let disabled = |full: bool| EndpointDisabled {
        event_id: "e".into(),
        event_type: ENDPOINT_DISABLED.into(),
        tenant: "acme".into(),
        endpoint_id: "ep".into(),
        reason: DisabledReason::Failing,
        failing_since: full.then(|| at("2025-06-01T10:00:00Z")),
        occurred_at: at("2025-06-01T10:00:00Z"),
    };
    assert_eq!(
        doc.properties("WebhookEndpointDisabled"),
        keys_of(&disabled(true))
    );
    assert_eq!(
        doc.required("WebhookEndpointDisabled"),
        keys_of(&disabled(false))
    );
    assert_eq!(
        doc.enumeration("WebhookEndpointDisabled", Some("reason")),
        set([
            DisabledReason::Gone,
            DisabledReason::Failing,
            DisabledReason::Operator
        ]
        .map(|r| r.as_str()))
    );
    assert_eq!(
        doc.enumeration("WebhookDeliveryDeadLettered", Some("type")),
        set([DELIVERY_DEAD_LETTERED])
    );
    assert_eq!(
        doc.enumeration("WebhookEndpointDisabled", Some("type")),
        set([ENDPOINT_DISABLED])
    );

    let test = WebhookTest {
        event_id: "e".into(),
        event_type: WEBHOOK_TEST.into(),
        tenant: "acme".into(),
        endpoint_id: "ep".into(),
        occurred_at: at("2025-06-01T10:00:00Z"),
    };
    assert_eq!(doc.properties("WebhookTest"), keys_of(&test));
    assert_eq!(doc.required("WebhookTest"), keys_of(&test));
    assert_eq!(
        doc.enumeration("WebhookTest", Some("type")),
        set([WEBHOOK_TEST])
    );
    assert!(
        !doc.addresses().iter().any(|a| a.contains("webhook.test")),
        "a test delivery is never published on NATS"
    );

    for file in [
        "event.webhook.delivery_dead_lettered.json",
        "event.webhook.endpoint_disabled.json",
        "event.webhook.test.json",
    ] {
        check_webhook_operation_example(file);
    }
}

/// A webhook operational event example round-trips through its type unchanged.
fn check_webhook_operation_example(file: &str) {
    let v = example(file);
    let back = match v["type"].as_str() {
        Some(DELIVERY_DEAD_LETTERED) => {
            serde_json::to_value(serde_json::from_value::<DeliveryDeadLettered>(v.clone()).unwrap())
        }
        Some(ENDPOINT_DISABLED) => {
            serde_json::to_value(serde_json::from_value::<EndpointDisabled>(v.clone()).unwrap())
        }
        Some(WEBHOOK_TEST) => {
            serde_json::to_value(serde_json::from_value::<WebhookTest>(v.clone()).unwrap())
        }
        other => panic!("{file}: unknown webhook operation {other:?}"),
    };
    assert_eq!(back.unwrap(), v, "{file}: does not round-trip unchanged");
}

// ---------------------------------------------------------------------------------------
// Command message ids (tenant scoping)
// ---------------------------------------------------------------------------------------

/// The document's `Nats-Msg-Id` for commands is the one the code checks: the subject's
/// tenant and the body's command id joined by a dot, and each command example's id, so
/// scoped, is what the intake accepts.
#[test]
fn command_message_ids_are_scoped_by_tenant_as_documented() {
    use rampd_domain::command_identity::{msg_id_fits, scoped_msg_id};
    let doc = Doc::load();
    let headers = block(&doc.lines(), 4, "CommandHeaders").join("\n");
    assert!(headers.contains("`<tenant>.<command_id>`"), "{headers}");
    assert!(headers.contains("msg_id_mismatch"), "{headers}");
    assert!(doc.0.contains("Nats-Msg-Id: <tenant>.<command_id>"));
    assert!(INTAKE_RS.contains("msg_id_fits(msg_id, tenant, &ids.command_id)"));
    for file in example_files() {
        let ExampleKind::Command(_) = example_kind(&file) else {
            continue;
        };
        let ids = parse_ids(example(&file).to_string().as_bytes()).unwrap();
        let id = scoped_msg_id("acme", &ids.command_id);
        assert_eq!(id, format!("acme.{}", ids.command_id), "{file}");
        assert!(msg_id_fits(Some(&id), "acme", &ids.command_id), "{file}");
        assert!(!msg_id_fits(Some(&ids.command_id), "acme", &ids.command_id));
        assert!(!msg_id_fits(Some(&id), "globex", &ids.command_id));
    }
}
