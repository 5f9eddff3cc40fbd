//! The matcher, table-driven: every condition, ordering, time zones and
//! daylight saving, Accept-Language q-values, the checks' error codes; and
//! properties of splits (shares within bounds, sticky per visitor).

use super::*;
use proptest::prelude::*;

fn rules(json: &str) -> Rules {
    let specs: Vec<RuleSpec> = serde_json::from_str(json).unwrap();
    Rules::parse(&specs, &["hop.test".to_owned()]).unwrap()
}

fn refused(json: &str) -> RuleError {
    let specs: Vec<RuleSpec> = serde_json::from_str(json).unwrap();
    Rules::parse(&specs, &["hop.test".to_owned()]).unwrap_err()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn visit() -> Visit<'static> {
    Visit {
        now: at("2026-03-04T12:00:00Z"),
        ..Visit::default()
    }
}

/// The id of the rule that decides `v` among `json`'s rules (one rule
/// per case, so: whether its conditions hold).
fn holds(json_condition: &str, v: &Visit) -> bool {
    let r = rules(&format!(
        r#"[{{"id":"x","if":[{json_condition}],"target":"https://x.example/"}}]"#
    ));
    r.decide(LinkId(1), v).rule == Some("x")
}

#[test]
fn every_condition_holds_and_fails() {
    let mut ok = 0;
    let cases: Vec<(&str, Visit, bool)> = vec![
        (
            r#"{"country":["de","AT"]}"#,
            Visit {
                country: Some("DE"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"country":["DE"]}"#,
            Visit {
                country: Some("FR"),
                ..visit()
            },
            false,
        ),
        (r#"{"country":["DE"]}"#, visit(), false),
        (
            r#"{"city":["Berlin"]}"#,
            Visit {
                city: Some("berlin"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"city":["München"]}"#,
            Visit {
                city: Some("MÜNCHEN"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"city":["Berlin"]}"#,
            Visit {
                city: Some("Bern"),
                ..visit()
            },
            false,
        ),
        (
            r#"{"device":["mobile","tablet"]}"#,
            Visit {
                device: Some(DeviceType::Tablet),
                ..visit()
            },
            true,
        ),
        (
            r#"{"device":["mobile"]}"#,
            Visit {
                device: Some(DeviceType::Desktop),
                ..visit()
            },
            false,
        ),
        (
            r#"{"device":["desktop"]}"#,
            Visit {
                device: Some(DeviceType::Bot),
                ..visit()
            },
            false,
        ),
        (
            r#"{"os":["windows"]}"#,
            Visit {
                os: Some("Windows 10"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"os":["macos"]}"#,
            Visit {
                os: Some("Mac OSX"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"os":["ios"]}"#,
            Visit {
                os: Some("iOS"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"os":["android"]}"#,
            Visit {
                os: Some("Android"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"os":["chromeos"]}"#,
            Visit {
                os: Some("ChromeOS"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"os":["linux"]}"#,
            Visit {
                os: Some("Android"),
                ..visit()
            },
            false,
        ),
        (
            r#"{"browser":["firefox"]}"#,
            Visit {
                browser: Some("Firefox"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"browser":["Chrome"]}"#,
            Visit {
                browser: Some("Safari"),
                ..visit()
            },
            false,
        ),
        (
            r#"{"language":["en"]}"#,
            Visit {
                accept_language: Some("en-GB,en;q=0.8"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"language":["en-gb"]}"#,
            Visit {
                accept_language: Some("en-US"),
                ..visit()
            },
            false,
        ),
        (
            r#"{"language":["en"]}"#,
            Visit {
                accept_language: Some("eng"),
                ..visit()
            },
            false,
        ),
        (r#"{"language":["de"]}"#, visit(), false),
        (
            r#"{"query":{"name":"ref","equals":"promo"}}"#,
            Visit {
                query: Some("a=1&ref=promo"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"query":{"name":"ref","equals":"promo"}}"#,
            Visit {
                query: Some("ref=other"),
                ..visit()
            },
            false,
        ),
        (
            r#"{"query":{"name":"q","equals":"a b"}}"#,
            Visit {
                query: Some("q=a+b"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"query_present":"ref"}"#,
            Visit {
                query: Some("ref="),
                ..visit()
            },
            true,
        ),
        (r#"{"query_present":"ref"}"#, visit(), false),
        (
            r#"{"query_absent":"ref"}"#,
            Visit {
                query: Some("x=1"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"query_absent":"ref"}"#,
            Visit {
                query: Some("ref=1"),
                ..visit()
            },
            false,
        ),
        (
            r#"{"ip":["203.0.113.0/24"]}"#,
            Visit {
                ip: Some("203.0.113.9".parse().unwrap()),
                ..visit()
            },
            true,
        ),
        (
            r#"{"ip":["203.0.113.7"]}"#,
            Visit {
                ip: Some("203.0.113.8".parse().unwrap()),
                ..visit()
            },
            false,
        ),
        (
            r#"{"ip":["203.0.113.0/24"]}"#,
            Visit {
                ip: Some("::ffff:203.0.113.9".parse().unwrap()),
                ..visit()
            },
            true,
        ),
        (
            r#"{"ip":["2001:db8::/32"]}"#,
            Visit {
                ip: Some("2001:db8:1::1".parse().unwrap()),
                ..visit()
            },
            true,
        ),
        (r#"{"ip":["10.0.0.0/8"]}"#, visit(), false),
        (
            r#"{"referrer":["example.com"]}"#,
            Visit {
                referrer_host: Some("news.Example.com"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"referrer":["example.com"]}"#,
            Visit {
                referrer_host: Some("example.com"),
                ..visit()
            },
            true,
        ),
        (
            r#"{"referrer":["example.com"]}"#,
            Visit {
                referrer_host: Some("badexample.com"),
                ..visit()
            },
            false,
        ),
        (r#"{"referrer":["example.com"]}"#, visit(), false),
        (
            r#"{"time":{"from":"2026-03-01T00:00:00Z","to":"2026-04-01T00:00:00Z"}}"#,
            visit(),
            true,
        ),
        (
            r#"{"time":{"from":"2026-03-05T00:00:00+01:00"}}"#,
            visit(),
            false,
        ),
        (r#"{"time":{"to":"2026-03-04T12:00:00Z"}}"#, visit(), false),
        (r#"{"time":{"days":["wed"]}}"#, visit(), true),
        (r#"{"time":{"days":["sat","sun"]}}"#, visit(), false),
    ];
    for (condition, v, want) in &cases {
        assert_eq!(holds(condition, v), *want, "{condition} with {v:?}");
        ok += 1;
    }
    assert_eq!(ok, cases.len());
}

#[test]
fn time_windows_follow_the_zone_and_its_daylight_saving() {
    let office = r#"{"time":{"days":["mon","tue","wed","thu","fri"],"hours":{"from":9,"to":17},"tz":"Europe/Berlin"}}"#;
    let night = r#"{"time":{"hours":{"from":22,"to":6},"tz":"America/New_York"}}"#;
    for (condition, now, want) in [
        // 08:30 UTC is 09:30 in Berlin in winter (UTC+1)...
        (office, "2026-03-27T08:30:00Z", true),
        // ...and 07:30 UTC is 08:30: not yet.
        (office, "2026-03-27T07:30:00Z", false),
        // After the switch on 29 March (UTC+2), 07:30 UTC is 09:30.
        (office, "2026-03-30T07:30:00Z", true),
        // 16:30 UTC is 18:30 in summer: closed.
        (office, "2026-03-30T16:30:00Z", false),
        // Saturday in Berlin.
        (office, "2026-03-28T10:00:00Z", false),
        // Friday 23:30 UTC is Saturday 00:30 in Berlin.
        (office, "2026-03-27T23:30:00Z", false),
        // New York: 03:00 UTC is 22:00 (UTC−5) in winter, 23:00 in summer.
        (night, "2026-01-15T03:00:00Z", true),
        (night, "2026-07-15T02:30:00Z", true),
        // 12:00 UTC is 07:00 or 08:00 there: day.
        (night, "2026-01-15T12:00:00Z", false),
        // 10:30 UTC in winter is 05:30: still night (wraps past midnight).
        (night, "2026-01-15T10:30:00Z", true),
        // 11:00 UTC in winter is 06:00: the window has ended.
        (night, "2026-01-15T11:00:00Z", false),
    ] {
        let v = Visit {
            now: at(now),
            ..visit()
        };
        assert_eq!(holds(condition, &v), want, "{condition} at {now}");
    }
}

#[test]
fn the_preferred_language_is_the_highest_q() {
    for (header, want) in [
        ("de", Some("de")),
        ("fr;q=0.4, en-GB;q=0.9, de", Some("de")),
        ("fr;q=0.4, en-GB;q=0.9", Some("en-gb")),
        ("*, it;q=0.5", Some("it")),
        ("en;q=0, fr;q=0.1", Some("fr")),
        ("en;q=0", None),
        ("en;q=2, fr;q=0.5", Some("fr")),
        ("en;q=abc", None),
        ("", None),
        ("da, en-gb;q=0.8, en;q=0.7", Some("da")),
        ("en-US,en;q=0.9", Some("en-us")),
    ] {
        assert_eq!(preferred_language(header).as_deref(), want, "{header:?}");
    }
}

#[test]
fn the_first_rule_that_holds_decides_and_none_leaves_the_link_target() {
    let r = rules(
        r#"[
            {"id":"de-mobile","if":[{"country":["DE"]},{"device":["mobile"]}],"target":"https://m.example.de/"},
            {"id":"de","if":[{"country":["DE"]}],"target":"https://example.de/"},
            {"id":"promo","if":[{"query_present":"ref"}],"target":"https://promo.example/"}
        ]"#,
    );
    let decide = |v: Visit| {
        let d = r.decide(LinkId(7), &v);
        (d.rule, d.target.map(TargetUrl::as_str))
    };
    assert_eq!(
        decide(Visit {
            country: Some("DE"),
            device: Some(DeviceType::Mobile),
            query: Some("ref=x"),
            ..visit()
        }),
        (Some("de-mobile"), Some("https://m.example.de/"))
    );
    assert_eq!(
        decide(Visit {
            country: Some("DE"),
            device: Some(DeviceType::Desktop),
            ..visit()
        }),
        (Some("de"), Some("https://example.de/"))
    );
    assert_eq!(
        decide(Visit {
            country: Some("FR"),
            query: Some("ref=x"),
            ..visit()
        }),
        (Some("promo"), Some("https://promo.example/"))
    );
    assert_eq!(decide(visit()), (None, None));
    assert!(
        Rules::default()
            .decide(LinkId(7), &visit())
            .target
            .is_none()
    );
}

#[test]
fn needs_say_what_to_work_out() {
    assert_eq!(Rules::default().needs(), Needs::default());
    let r = rules(r#"[{"if":[{"query_present":"a"}],"target":"https://x.example/"}]"#);
    assert_eq!(r.needs(), Needs::default());
    let r = rules(
        r#"[{"if":[{"city":["Paris"]}],"target":"https://x.example/"},
            {"if":[{"os":["ios"]}],"split":[{"target":"https://a.example/","weight":1},{"target":"https://b.example/","weight":1}]}]"#,
    );
    assert_eq!(
        r.needs(),
        Needs {
            location: true,
            user_agent: true,
            visitor: true
        }
    );
}

#[test]
fn ids_are_given_and_the_specs_round_trip() {
    let r = rules(
        r#"[{"if":[{"country":["de"]},{"ip":["203.0.113.7"]},{"time":{"days":["fri","mon"],"hours":{"from":9,"to":17},"tz":"Europe/Berlin"}}],"target":"https://x.example/"},
            {"id":"ab","split":[{"target":"https://a.example/","weight":3},{"id":"new","target":"https://b.example/","weight":1}]}]"#,
    );
    let specs = r.to_specs();
    assert_eq!(specs[0].id.as_deref(), Some("r1"));
    assert_eq!(
        specs[1].split.as_ref().unwrap()[0].id.as_deref(),
        Some("a"),
        "variants get a, b, … by position"
    );
    // A default id never takes one given further on.
    let r2 = rules(
        r#"[{"target":"https://x.example/"},{"id":"r1","split":[{"target":"https://a.example/","weight":1},{"id":"a","target":"https://b.example/","weight":1}]}]"#,
    );
    let ids = r2.to_specs();
    assert_eq!(ids[0].id.as_deref(), Some("r2"));
    assert_eq!(ids[1].split.as_ref().unwrap()[0].id.as_deref(), Some("b"));
    let json = serde_json::to_string(&specs).unwrap();
    assert!(json.contains(r#""country":["DE"]"#), "{json}");
    assert!(json.contains(r#""ip":["203.0.113.7/32"]"#), "{json}");
    assert!(json.contains(r#""days":["mon","fri"]"#), "{json}");
    let again: Vec<RuleSpec> = serde_json::from_str(&json).unwrap();
    assert_eq!(Rules::parse(&again, &[]).unwrap(), r);
}

#[test]
fn bad_rules_get_specific_codes() {
    let t = r#""target":"https://x.example/""#;
    let many = format!("[{}]", vec![format!("{{{t}}}"); MAX_RULES + 1].join(","));
    for (json, code) in [
        (many.as_str(), "too_many_rules"),
        (&*format!(r#"[{{"id":"Bad Id",{t}}}]"#), "invalid_rule_id"),
        (&*format!(r#"[{{"id":"default",{t}}}]"#), "invalid_rule_id"),
        (&*format!(r#"[{{"id":"fallback",{t}}}]"#), "invalid_rule_id"),
        (
            &*format!(r#"[{{"id":"a",{t}}},{{"id":"a",{t}}}]"#),
            "duplicate_rule_id",
        ),
        (r#"[{"if":[{"country":["DE"]}]}]"#, "invalid_rule_action"),
        (
            r#"[{"target":"https://x.example/","split":[{"target":"https://a.example/","weight":1},{"target":"https://b.example/","weight":1}]}]"#,
            "invalid_rule_action",
        ),
        (r#"[{"target":"ftp://x.example/"}]"#, "invalid_rule_target"),
        (
            r#"[{"target":"https://hop.test/abc"}]"#,
            "invalid_rule_target",
        ),
        (
            r#"[{"split":[{"target":"https://a.example/","weight":1}]}]"#,
            "invalid_split",
        ),
        (
            r#"[{"split":[{"target":"https://a.example/","weight":0},{"target":"https://b.example/","weight":1}]}]"#,
            "invalid_split",
        ),
        (
            r#"[{"split":[{"id":"x","target":"https://a.example/","weight":1},{"id":"x","target":"https://b.example/","weight":1}]}]"#,
            "invalid_split",
        ),
        (
            r#"[{"split":[{"target":"https://a.example/","weight":1},{"target":"javascript:alert(1)","weight":1}]}]"#,
            "invalid_rule_target",
        ),
        (
            &*format!(r#"[{{"if":[{{"country":["DEU"]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"country":[]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"device":["fridge"]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"os":["beos"]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"language":["en_GB"]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"ip":["10.0.0.0/33"]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"query_present":""}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"device":["Mobile"]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"time":{{"days":["Monday"]}}}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"referrer":["example.com.."]}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"time":{{}}}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"time":{{"tz":"Mars/Olympus"}}}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"time":{{"hours":[9,9]}}}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"time":{{"hours":[9,25]}}}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"time":{{"days":["someday"]}}}}],{t}}}]"#),
            "invalid_condition",
        ),
        (
            &*format!(
                r#"[{{"if":[{{"time":{{"from":"2026-02-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}}}}],{t}}}]"#
            ),
            "invalid_condition",
        ),
        (
            &*format!(r#"[{{"if":[{{"referrer":["not a host"]}}],{t}}}]"#),
            "invalid_condition",
        ),
    ] {
        assert_eq!(refused(json).code(), code, "{json}");
    }
    let specs: Vec<RuleSpec> = vec![RuleSpec {
        id: None,
        conditions: vec![ConditionSpec::Country(vec!["DE".into()]); MAX_CONDITIONS + 1],
        target: Some("https://x.example/".into()),
        split: None,
    }];
    assert_eq!(
        Rules::parse(&specs, &[]).unwrap_err().code(),
        "too_many_conditions"
    );
    // Unknown fields and condition kinds are refused by the JSON itself.
    assert!(serde_json::from_str::<Vec<RuleSpec>>(r#"[{"when":[]}]"#).is_err());
    assert!(serde_json::from_str::<Vec<RuleSpec>>(r#"[{"if":[{"planet":["mars"]}]}]"#).is_err());
    assert!(
        serde_json::from_str::<Vec<RuleSpec>>(r#"[{"if":[{"query":{"name":"a"}}]}]"#).is_err(),
        "a query condition needs its value"
    );
    // Whole numbers may carry a zero fraction, as JSON Schema allows.
    let specs: Vec<RuleSpec> = serde_json::from_str(
        r#"[{"if":[{"time":{"hours":{"from":9.0,"to":17}}}],"split":[{"target":"https://a.example/","weight":2.0},{"target":"https://b.example/","weight":1}]}]"#,
    )
    .unwrap();
    assert!(Rules::parse(&specs, &[]).is_ok());
    assert!(
        serde_json::from_str::<Vec<RuleSpec>>(
            r#"[{"split":[{"target":"https://a.example/","weight":2.5}]}]"#
        )
        .is_err()
    );
}

fn split_rules(weights: &[u32]) -> Rules {
    let variants: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!(r#"{{"target":"https://v{i}.example/","weight":{w}}}"#))
        .collect();
    rules(&format!(
        r#"[{{"id":"ab","split":[{}]}}]"#,
        variants.join(",")
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Over 100 000 visitors each variant's share is within five standard
    /// deviations of its weight's.
    #[test]
    fn splits_follow_the_weights(
        weights in prop::collection::vec(1u32..=100, 2..=10),
        seed in any::<u64>(),
        link in any::<i64>(),
    ) {
        use rand::{Rng, SeedableRng};
        let r = split_rules(&weights);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = 100_000u32;
        let mut seen = vec![0u32; weights.len()];
        for _ in 0..n {
            let v = Visit { visitor: rng.random(), ..visit() };
            let d = r.decide(LinkId(link), &v);
            let id = d.variant.unwrap();
            seen[usize::from(id.as_bytes()[0] - b'a')] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (w, got) in weights.iter().zip(&seen) {
            let p = f64::from(*w) / f64::from(total);
            let mean = f64::from(n) * p;
            let sd = (f64::from(n) * p * (1.0 - p)).sqrt();
            prop_assert!(
                (f64::from(*got) - mean).abs() <= 5.0 * sd,
                "weight {w} of {total}: {got} of {n}, expected {mean:.0} ± {:.0}", 5.0 * sd
            );
        }
    }

    /// A visitor gets the same variant on every visit of the day, whatever
    /// else differs, and the choice does not depend on the other rules.
    #[test]
    fn a_visitor_keeps_its_variant(visitor in any::<i64>(), link in any::<i64>()) {
        let r = split_rules(&[1, 1, 1]);
        let with_rule_before = rules(
            r#"[{"id":"first","if":[{"country":["ZZ"]}],"target":"https://z.example/"},
                {"id":"ab","split":[{"target":"https://v0.example/","weight":1},{"target":"https://v1.example/","weight":1},{"target":"https://v2.example/","weight":1}]}]"#,
        );
        let first = r.decide(LinkId(link), &Visit { visitor, ..visit() }).variant;
        for (country, at_time) in [(Some("DE"), "2026-03-04T00:00:01Z"), (None, "2026-03-04T23:59:59Z")] {
            let v = Visit { visitor, country, now: super::tests::at(at_time), ..visit() };
            prop_assert_eq!(r.decide(LinkId(link), &v).variant, first);
            prop_assert_eq!(with_rule_before.decide(LinkId(link), &v).variant, first);
        }
    }
}
