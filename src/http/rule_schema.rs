//! The OpenAPI schema of a smart link rule ([`RuleSpec`]), written out: a
//! condition is one of several single-key objects, which the derive cannot
//! say. It is as strict as [`crate::domain::rules::Rules::parse`] wherever
//! JSON Schema can be; what it cannot say (ids unique in their list and not
//! `default` or `fallback`, exactly one of `target` and `split`, a time window's `from`
//! before its `to` and not empty, a time zone or an address that exists)
//! is in the descriptions, and scripts/schemathesis/hop_hooks.py moves
//! generated rules that break only that to valid ones.

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::links::URL_PATTERN;
use crate::domain::MAX_URL_LEN;
use crate::domain::rules::{
    DAYS, MAX_CONDITIONS, MAX_ID_LEN, MAX_VALUE_LEN, MAX_VALUES, MAX_VARIANTS, MAX_WEIGHT,
    MIN_VARIANTS, RuleSpec,
};

/// A text of 1 to [`MAX_VALUE_LEN`] characters without control characters.
fn text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LEN,
           "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"})
}

fn list(item: Value, what: &str) -> Value {
    json!({"type": "array", "minItems": 1, "maxItems": MAX_VALUES, "items": item,
           "description": what})
}

fn url() -> Value {
    json!({"type": "string", "pattern": URL_PATTERN, "maxLength": MAX_URL_LEN,
           "description": "A target, checked like a link's `url`."})
}

fn id(what: &str) -> Value {
    json!({"type": "string", "pattern": format!("^[a-z0-9_-]{{1,{MAX_ID_LEN}}}$"),
           "description": what})
}

/// `{"key": value}` and nothing else.
fn one(key: &str, value: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": [key],
           "properties": {key: value}})
}

fn condition() -> Value {
    let host = "^(?:[A-Za-z0-9_-]{1,63}\\.)*[A-Za-z][A-Za-z0-9_-]{0,62}\\.?$";
    let hour = |min: u8, max: u8| json!({"type": "integer", "minimum": min, "maximum": max});
    json!({
        "description": "One condition: an object with one key, its kind.",
        "oneOf": [
            one("country", list(json!({"type": "string", "pattern": "^[A-Za-z]{2}$"}),
                "ISO 3166-1 alpha-2 codes (any case), from the same geo lookup as analytics.")),
            one("city", list(text(), "City names as the geo lookup gives them (any case).")),
            one("device", list(json!({"type": "string", "enum": ["desktop", "mobile", "tablet"]}),
                "Device types, from the same user agent parse as analytics.")),
            one("os", list(json!({"type": "string",
                    "enum": ["android", "ios", "windows", "macos", "linux", "chromeos"]}),
                "Operating system families.")),
            one("browser", list(text(), "Browser names as analytics show them (any case).")),
            one("language", list(json!({"type": "string", "maxLength": MAX_VALUE_LEN,
                    "pattern": "^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$"}),
                "Language tags: the visitor's preferred language (Accept-Language, highest q) \
                 is one of them or a subtag of one (`en` holds for `en-GB`).")),
            one("query", json!({"type": "object", "additionalProperties": false,
                "required": ["name", "equals"],
                "properties": {"name": text(), "equals": {"type": "string", "maxLength": MAX_VALUE_LEN,
                    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}},
                "description": "The short URL's query parameter `name` has the value `equals`."})),
            one("query_present", json!({"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LEN,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                "description": "The short URL's query has this parameter (any value)."})),
            one("query_absent", json!({"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LEN,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                "description": "The short URL's query does not have this parameter."})),
            one("ip", list(json!({"type": "string", "minLength": 2, "maxLength": 49,
                    "pattern": "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"}),
                "Client addresses or networks (`203.0.113.0/24`, `2001:db8::/32`) that parse as such.")),
            one("time", json!({"type": "object", "additionalProperties": false,
                "description": "A time window; give at least one of from, to, days and hours, \
                    and from before to.",
                "properties": {
                    "from": {"type": "string", "format": "date-time",
                        "description": "From this instant on (RFC 3339)."},
                    "to": {"type": "string", "format": "date-time",
                        "description": "Before this instant (RFC 3339)."},
                    "days": {"type": "array", "minItems": 1, "maxItems": MAX_VALUES,
                        "items": {"type": "string", "enum": DAYS},
                        "description": "On these days in `tz`."},
                    "hours": {"type": "object", "additionalProperties": false,
                        "required": ["from", "to"],
                        "properties": {"from": hour(0, 23), "to": hour(1, 24)},
                        "description": "From hour `from` up to hour `to` in `tz` (not equal; \
                            `to` before `from` spans midnight)."},
                    "tz": {"type": "string", "maxLength": 64,
                        "pattern": "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
                        "description": "An IANA time zone (default UTC)."}
                }})),
            one("referrer", list(json!({"type": "string", "maxLength": MAX_VALUE_LEN, "pattern": host}),
                "Referrer hosts; a subdomain of one holds too.")),
        ]
    })
}

fn rule() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "A smart link rule: when all its conditions hold (none: always), the \
            visit goes to `target`, or to one of `split`'s variants, chosen by the visitor's \
            daily hash (sticky, in proportion to the weights). Give exactly one of `target` \
            and `split`.",
        "properties": {
            "id": id("Unique in the link, not `default` or `fallback`; `r1`, `r2`, … by position when absent."),
            "if": {"type": "array", "maxItems": MAX_CONDITIONS, "items": condition()},
            "target": url(),
            "split": {"type": "array", "minItems": MIN_VARIANTS, "maxItems": MAX_VARIANTS,
                "items": {"type": "object", "additionalProperties": false,
                    "required": ["target", "weight"],
                    "properties": {
                        "id": id("Unique in the split, not `default` or `fallback`; `a`, `b`, … by position when absent."),
                        "target": url(),
                        "weight": {"type": "integer", "minimum": 1, "maximum": MAX_WEIGHT}
                    }}}
        }
    })
}

impl utoipa::PartialSchema for super::links::PatchRule {
    fn schema() -> RefOr<Schema> {
        let mut patch = rule();
        patch["description"] = json!(
            "A change to one rule: each field given replaces the rule's (`target` replaces \
             a `split`, `split` a `target`; give at most one of them), the others stay. \
             The link's list with the changed rule is checked like a whole list."
        );
        serde_json::from_value(patch).expect("a schema utoipa reads")
    }
}

impl utoipa::ToSchema for super::links::PatchRule {
    fn name() -> std::borrow::Cow<'static, str> {
        "RulePatch".into()
    }
}

impl utoipa::PartialSchema for RuleSpec {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(rule()).expect("a schema utoipa reads")
    }
}

impl utoipa::ToSchema for RuleSpec {
    fn name() -> std::borrow::Cow<'static, str> {
        "Rule".into()
    }
}
