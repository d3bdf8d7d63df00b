//! Secrets Manager beyond single names, end to end against moto: a secret prefix as a directory
//! entry, a whole JSON secret (or parameter) as an object in a template, and one value shared by a
//! secret and a parameter, which `audit reuse` finds. The world of each test is `sources::Case`.

use crate::support;

use std::collections::BTreeMap;
use std::fs;

use serde_json::json;
use support::{canary_value, snapshot, validate_schema};

const RENDER: i32 = 5;
const DRIFT: i32 = 7;
use crate::sources::Case;
use crate::support::statuses;

#[test]
fn audit_reuse_finds_a_value_shared_by_a_secret_and_a_parameter() {
    let c = Case::new("reuse-src");
    let shared = canary_value();
    c.seeder
        .create_string(&format!("{}/staging/api", c.prefix), &shared);
    c.params
        .put(&c.param("production/api"), &shared, "SecureString");
    c.params.put(
        &c.param("production/other"),
        &canary_value(),
        "SecureString",
    );
    fs::write(
        c.dir.path().join("credfile.yaml"),
        format!(
            "version: 1\napp: shop\ndefaults:\n  region: us-east-1\n  root: /run/credfile/shop\nenvironments:\n  staging: {{}}\n  production: {{ protected: true, account: \"123456789012\" }}\nfiles:\n  - path: api\n    secret: {p}/staging/api\n    environments: [staging]\n  - path: api\n    parameter: /{p}/production/api\n    environments: [production]\n  - path: other\n    parameter: /{p}/production/other\n    environments: [production]\n",
            p = c.prefix
        ),
    )
    .unwrap();
    let out = c.credfile().run([
        "audit",
        "reuse",
        "--env",
        "staging",
        "--env",
        "production",
        "--output",
        "json",
    ]);
    let report = out.json();
    assert_eq!(report["summary"]["pairs"], 1, "{report:#}");
    let pair = &report["pairs"][0];
    let names = [
        pair["a"]["secret"].as_str().unwrap(),
        pair["b"]["secret"].as_str().unwrap(),
    ];
    assert!(
        names.contains(&format!("{}/staging/api", c.prefix).as_str()),
        "{pair}"
    );
    assert!(
        names.iter().any(|n| n.contains(&c.param("production/api"))),
        "{pair}"
    );
    assert!(!out.success(), "a protected environment shares a value");
}

/// Issue 17, item 12: a `values:` item without `key` whose secret or parameter is a JSON object
/// is an object in the template (`{{ db.host }}`); other text stays a string; a missing key
/// fails naming the template, its line and the name, never a value, and writes nothing.
#[test]
fn a_template_reads_a_whole_json_secret_and_parameter_as_objects() {
    let c = Case::new("tmpl-object");
    let (host, pass, region, plain) = (
        canary_value(),
        canary_value(),
        canary_value(),
        canary_value(),
    );
    support::Canaries::global().add(&region);
    c.seeder.create_json(
        &format!("{}/db", c.prefix),
        &json!({"host": host, "password": pass, "port": 5432, "opts": {"ssl": true}}),
    );
    c.params.put(
        &c.param("app"),
        &json!({"region": region, "replicas": 3}).to_string(),
        "SecureString",
    );
    c.params.put(&c.param("plain"), &plain, "String");
    let template = |line3: &str| {
        fs::write(
            c.dir.path().join("app.conf.j2"),
            format!(
                "host = {{{{ db.host }}}}:{{{{ db.port }}}}\npassword = {{{{ db.password | json }}}}\n{line3}\nregion = {{{{ app.region }}}} x{{{{ app.replicas }}}}\nplain = {{{{ plain }}}}\n"
            ),
        )
        .unwrap();
    };
    template("opts = {{ db.opts }} {{ db.opts.ssl }}");
    c.manifest(
        "",
        "  - path: app.conf\n    format: template\n    template_file: app.conf.j2\n    values:\n      db: { secret: \"${prefix}/db\" }\n      app: { parameter: \"/${prefix}/app\" }\n      plain: { parameter: \"/${prefix}/plain\" }\n",
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(
        String::from_utf8(c.file("app.conf")).unwrap(),
        format!(
            "host = {host}:5432\npassword = \"{pass}\"\nopts = {{\"ssl\":true}} True\nregion = {region} x3\nplain = {plain}\n"
        )
    );

    // A typo on line 3: named with the keys `db` does have; no value, no blame on the secret.
    let before = snapshot(c.root());
    template("ssl = {{ db.hots }}");
    let out = c.apply();
    out.assert_code(RENDER);
    let err = &out.stderr;
    assert!(
        err.contains("app.conf.j2") && err.contains("line 3"),
        "{err}"
    );
    assert!(
        err.contains("`db.hots` is undefined (`db` has keys: `host`, `opts`, `password`, `port`)"),
        "{err}"
    );
    assert!(!err.contains("Secrets Manager"), "{err}");
    assert_eq!(snapshot(c.root()), before, "nothing written");

    // The same in a parameter's object, in JSON output.
    template("x = {{ app.regoin }}");
    let out = c.apply();
    out.assert_code(RENDER);
    let text = out.json().to_string();
    assert!(
        text.contains("`app.regoin` is undefined (`app` has keys: `region`, `replicas`)"),
        "{text}"
    );
    assert_eq!(snapshot(c.root()), before, "nothing written");
}

/// Issue 17, item 14: `secret: PREFIX*` is a directory of the secrets under the prefix, named by
/// the rest of their names, followed as a set: listed with ListSecrets, read in batches of 20
/// together with the secrets named directly (each once), a secret scheduled for deletion left
/// out, a name that cannot be a file refused with nothing written.
#[test]
fn a_secret_prefix_entry_follows_the_secrets_under_it() {
    let c = Case::new("sm-prefix");
    let name = |short: &str| format!("{}/staging/{short}", c.prefix);
    let mut values = BTreeMap::new();
    for i in 0..20 {
        let v = canary_value();
        c.seeder.create_string(&name(&format!("k{i:02}")), &v);
        values.insert(format!("staging/k{i:02}"), v);
    }
    let b = canary_value();
    c.seeder.create_string(&name("sub/b"), &b);
    // Not under `staging/`: a name that merely starts alike, and a sibling.
    c.seeder
        .create_string(&format!("{}/stagingx", c.prefix), &canary_value());
    c.seeder
        .create_string(&format!("{}/other", c.prefix), &canary_value());
    c.manifest(
        "",
        "  - path: staging\n    secret: ${prefix}/staging/*\n    mode: \"0440\"\n  - path: direct-b\n    secret: ${prefix}/staging/sub/b\n",
    );
    let out = c.apply();
    out.assert_code(0);
    validate_schema(&out.json());
    for (rel, v) in &values {
        assert_eq!(c.file(rel), v.as_bytes(), "{rel}");
    }
    assert_eq!(c.file("staging/sub/b"), b.as_bytes());
    assert_eq!(c.file("direct-b"), b.as_bytes());
    let written = statuses(&out);
    assert_eq!(written.len(), 22, "{written:?}");
    assert!(written.values().all(|s| s == "created"), "{written:?}");
    assert_eq!(out.json()["files"][0]["mode"], "0440");
    // 21 distinct secrets (sub/b once): one listing, two batches, no single gets.
    let calls = &out.json()["fetch"]["calls"];
    assert_eq!(calls["list_secrets"]["calls"], 1, "{calls}");
    assert_eq!(calls["batch_get_secret_value"]["calls"], 2, "{calls}");
    assert_eq!(calls["get_secret_value"]["calls"], 0, "{calls}");

    let verify = |c: &Case| {
        c.credfile()
            .run(["verify", "--env", "test", "--output", "json"])
    };
    verify(&c).assert_code(0);

    // Upstream: one added, one scheduled for deletion (still listed by AWS only on request).
    let d = canary_value();
    c.seeder.create_string(&name("d"), &d);
    c.seeder
        .block_on(
            c.seeder
                .client()
                .delete_secret()
                .secret_id(name("k00"))
                .recovery_window_in_days(7)
                .send(),
        )
        .unwrap();
    let drift = verify(&c);
    drift.assert_code(DRIFT);
    assert!(
        drift.stdout.contains("staging/k00") && drift.stdout.contains("staging/d"),
        "{}",
        drift.stdout
    );
    let out = c.apply();
    out.assert_code(0);
    let changed: BTreeMap<String, String> = statuses(&out)
        .into_iter()
        .filter(|(_, s)| s != "unchanged")
        .collect();
    assert_eq!(
        changed,
        BTreeMap::from([
            ("staging/d".to_string(), "created".to_string()),
            ("staging/k00".to_string(), "removed".to_string()),
        ])
    );
    assert!(!c.root().join("staging/k00").exists());
    assert_eq!(c.file("staging/d"), d.as_bytes());

    // A name under the prefix that cannot be a file name is refused; nothing changes.
    let before = snapshot(c.root());
    c.seeder.create_string(&name("x/.."), &canary_value());
    let out = c.apply();
    out.assert_code(RENDER);
    assert!(
        out.stderr.contains("cannot be a file name") && out.stderr.contains("secret prefix"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before);
}
