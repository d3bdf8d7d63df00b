use super::*;

const GOOD: &str = r#"version: 1
app: payments
defaults:
  region: us-east-1
  root: /run/credfile/payments
  mode: "0440"
environments:
  staging:
    account: "111111111111"
    identity:
      role_arn: arn:aws:iam::111111111111:role/payments-deploy-staging
    vars: { prefix: payments/staging }
  production:
    protected: true
    account: "222222222222"
    region: eu-west-1
    root: /run/credfile/payments-prod
    vars: { prefix: payments/production }
files:
  - path: db/password
    secret: ${prefix}/db
    key: password
  - path: app.env
    format: dotenv
    values:
      API_KEY: { secret: "${prefix}/api-key" }
      DB_USER: { secret: "${prefix}/db", key: username }
  - path: tls/server.key
    secret: ${prefix}/tls
    version_stage: AWSPREVIOUS
    encoding: base64
    mode: "0400"
    owner: 65534
    environments: [production]
"#;

fn errors(text: &str) -> Vec<String> {
    match from_text(Path::new("m.yaml"), text, &PlainFiles) {
        Ok(_) => panic!("expected errors"),
        Err(ManifestError::Invalid { diagnostics, .. }) => {
            diagnostics.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn resolves_an_environment() {
    let m = from_text(Path::new("m.yaml"), GOOD, &PlainFiles).unwrap();
    let plan = m.resolve("staging", None).unwrap();
    assert_eq!(plan.root, PathBuf::from("/run/credfile/payments"));
    assert_eq!(plan.region.as_deref(), Some("us-east-1"));
    assert_eq!(plan.files.len(), 2, "tls is production only");
    assert_eq!(plan.files[0].mode, 0o440);
    assert_eq!(plan.files[0].line, 20);
    let Content::Raw { source, .. } = &plan.files[0].content else {
        panic!()
    };
    assert_eq!(source.secret.id, "payments/staging/db");
    assert_eq!(source.key, Some(KeySel::Key("password".into())));
    let refs = plan.secret_refs();
    assert_eq!(refs.len(), 2, "db is read twice but fetched once: {refs:?}");

    let prod = m.resolve("production", Some(Path::new("/tmp/x"))).unwrap();
    assert_eq!(prod.root, PathBuf::from("/tmp/x"));
    assert_eq!(prod.region.as_deref(), Some("eu-west-1"));
    assert!(prod.protected);
    let tls = &prod.files[2];
    assert_eq!(
        (tls.mode, tls.owner.clone()),
        (0o400, Some(Principal::Id(65534)))
    );
    let Content::Raw { source, encoding } = &tls.content else {
        panic!()
    };
    assert_eq!(source.secret.pin, Pin::Stage("AWSPREVIOUS".into()));
    assert_eq!(*encoding, Some(Encoding::Base64));
}

#[test]
fn unknown_environment_lists_the_known_ones() {
    let m = from_text(Path::new("m.yaml"), GOOD, &PlainFiles).unwrap();
    let err = m.resolve("prod", None).unwrap_err().to_string();
    assert!(
        err.contains("no environment `prod`") && err.contains("staging, production"),
        "{err}"
    );
}

#[test]
fn undefined_variable_is_located() {
    let text = GOOD.replace(
        "vars: { prefix: payments/production }",
        "vars: { other: x }",
    );
    let errs = errors(&text);
    assert!(
        errs.contains(&"21:13: `${prefix}` is not defined in environment `production`".to_string()),
        "{errs:#?}"
    );
}

#[test]
fn paths_must_stay_inside_root() {
    for bad in [
        "../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "./a",
        ".credfile-x",
    ] {
        let text = GOOD.replace("path: db/password", &format!("path: \"{bad}\""));
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.starts_with("20:11: path")),
            "{bad}: {errs:#?}"
        );
    }
}

#[test]
fn collisions_are_rejected_per_environment() {
    let text = GOOD.replace("path: app.env", "path: db/password/x");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("collides with `db/password`")),
        "{errs:#?}"
    );
}

#[test]
fn collisions_are_every_pair_with_one_path_at_or_below_the_other() {
    let paths = [
        "a", "a/b", "a/b", "ab", "a/bc", "c/d/e", "c", "x/y", "x/z", "c/d",
    ];
    let files: String = paths
        .iter()
        .map(|p| format!("  - path: {p}\n    secret: s/{p}\n"))
        .collect();
    let text = format!(
        "version: 1\napp: a\ndefaults: {{ region: us-east-1, root: /r }}\nenvironments: {{ e: {{}} }}\nfiles:\n{files}"
    );
    let got: Vec<String> = errors(&text)
        .iter()
        .map(|e| e.split_once(": ").unwrap().1.to_string())
        .collect();
    let mut expected = Vec::new();
    for (m, b) in paths.iter().enumerate() {
        for a in &paths[..m] {
            if Path::new(b).starts_with(a) || Path::new(a).starts_with(b) {
                expected.push(format!("`{b}` collides with `{a}` in environment `e`"));
            }
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn bad_values_are_each_reported() {
    let text = GOOD
        .replace("mode: \"0440\"", "mode: \"0999\"")
        .replace("account: \"111111111111\"", "account: \"1111\"")
        .replace("key: password", "key: \"/a~2\"");
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("6:9: mode `0999`"), "{errs:#?}");
    assert!(errs[1].starts_with("9:14: `account`"), "{errs:#?}");
    assert!(errs[2].starts_with("22:10: JSON pointer"), "{errs:#?}");
}

#[test]
fn protected_needs_account() {
    let text = GOOD.replace("    account: \"222222222222\"\n", "");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("protected environment `production` has no `account`")),
        "{errs:#?}"
    );
}

#[test]
fn literal_values_get_a_hint() {
    let text = GOOD.replace("    key: password\n", "    value: hunter2-literal\n");
    let err = from_text(Path::new("m.yaml"), &text, &PlainFiles).unwrap_err();
    assert!(err.to_string().starts_with("m.yaml:22:5: "), "{err}");
    assert!(err.hint().unwrap().contains("references only"));
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn format_rules() {
    let text = GOOD.replace(
        "    format: dotenv\n",
        "    format: dotenv\n    secret: x\n",
    );
    assert!(
        errors(&text)
            .iter()
            .any(|e| e.contains("`secret` belongs inside each entry"))
    );
    let text = GOOD.replace("API_KEY:", "1BAD:");
    assert!(
        errors(&text)
            .iter()
            .any(|e| e.contains("dotenv name `1BAD`"))
    );
    let text = GOOD.replace(
        "    version_stage: AWSPREVIOUS\n",
        "    version_stage: AWSPREVIOUS\n    version_id: 0123456789abcdef0123456789abcdef\n",
    );
    assert!(errors(&text).iter().any(|e| e.contains("not both")));
}

#[test]
fn substitute_variables() {
    let vars = vec![("a".to_string(), "x".to_string())];
    assert_eq!(substitute("p/${a}/q${a}", &vars), Ok("p/x/qx".into()));
    assert_eq!(
        substitute("${b}", &vars),
        Err(SubstError::Undefined("b".into()))
    );
    assert_eq!(substitute("${a", &vars), Err(SubstError::Unclosed));
    assert_eq!(substitute("$a", &vars), Ok("$a".into()));
}

#[test]
fn kms_keys_must_be_key_arns() {
    let key = "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let text = GOOD.replace(
        "    vars: { prefix: payments/production }\n",
        &format!("    vars: {{ prefix: payments/production }}\n    kms_keys: [{key}]\n"),
    );
    let m = from_text(Path::new("m.yaml"), &text, &PlainFiles).unwrap();
    let prod = m
        .environments
        .iter()
        .find(|e| e.name == "production")
        .unwrap();
    assert_eq!(prod.kms_keys, vec![key.to_string()]);

    let text = GOOD.replace(
        "    vars: { prefix: payments/production }\n",
        &format!("    vars: {{ prefix: payments/production }}\n    kms_keys:\n      - arn:aws:kms:eu-west-1:222222222222:alias/payments\n      - {key}\n      - {key}\n"),
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("20:9: ") && errs[0].contains("alias ARN"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("22:9: ") && errs[1].contains("listed twice"),
        "{errs:?}"
    );
}

const LIFECYCLE_BASE: &str = "version: 1\napp: a\ndefaults:\n  root: /r\n  on_change: [systemctl, reload, a]\nenvironments:\n  s:\n    vars: { p: x }\n  f:\n    layout: files\n    on_change: [/bin/true]\n    vars: { p: x }\nfiles:\n";

#[test]
fn layout_and_hooks_resolve_per_environment() {
    let text = format!(
        "{LIFECYCLE_BASE}  - path: a\n    secret: ${{p}}/a\n    on_change: [touch, /tmp/x]\n"
    );
    let m = from_text(Path::new("m.yaml"), &text, &PlainFiles).unwrap();
    let s = m.resolve("s", None).unwrap();
    assert_eq!(s.layout, Layout::Generation, "the default");
    assert_eq!(s.on_change, ["systemctl", "reload", "a"], "from defaults");
    assert_eq!(s.files[0].on_change, ["touch", "/tmp/x"]);
    let f = m.resolve("f", None).unwrap();
    assert_eq!(f.layout, Layout::Files);
    assert_eq!(f.on_change, ["/bin/true"], "the environment overrides");
}

#[test]
fn hooks_and_templates_are_checked() {
    let errs = errors(&format!(
        "{LIFECYCLE_BASE}  - path: a\n    secret: ${{p}}/a\n    on_change: []\n  - path: b\n    secret: ${{p}}/a\n    template: 'x'\n  - path: c\n    format: template\n    values: {{ v: {{ secret: \"${{p}}/a\" }} }}\n  - path: d\n    format: template\n    template: 'x'\n    template_file: t.j2\n    values: {{ v: {{ secret: \"${{p}}/a\" }} }}\n  - path: e\n    format: template\n    template: '{{{{ v | nosuchfilter }}}}'\n    values: {{ v: {{ secret: \"${{p}}/a\" }} }}\n  - path: g\n    format: template\n    template_file: missing.j2\n    values: {{ v: {{ secret: \"${{p}}/a\" }} }}\n"
    ));
    let all = errs.join("\n");
    assert!(all.contains("16:16: `on_change` needs a program"), "{all}");
    assert!(
        all.contains("19:15: `template` needs `format: template`"),
        "{all}"
    );
    assert!(
        all.contains("needs `template:` (inline) or `template_file:`"),
        "{all}"
    );
    assert!(
        all.contains("give `template` or `template_file`, not both"),
        "{all}"
    );
    // Filters are looked up when rendering (an unknown one fails the render, exit 5).
    assert!(!all.contains("\n31:"), "{all}");
    assert!(all.contains("cannot read template file"), "{all}");
}

#[test]
fn run_as_is_a_user_name_or_uid_with_its_line() {
    let with = |value: &str| {
        GOOD.replace(
            "    vars: { prefix: payments/staging }\n",
            &format!("    vars: {{ prefix: payments/staging }}\n    run_as: {value}\n"),
        )
    };
    for (value, want) in [
        ("deploy", Principal::Name("deploy".into())),
        ("_svc.app-1", Principal::Name("_svc.app-1".into())),
        ("1001", Principal::Id(1001)),
        ("\"0\"", Principal::Id(0)),
    ] {
        let m = from_text(Path::new("m.yaml"), &with(value), &PlainFiles).unwrap();
        let plan = m.resolve("staging", None).unwrap();
        assert_eq!(plan.run_as, Some(want), "{value}");
        assert_eq!(plan.run_as_line, 13, "{value}");
        assert_eq!(m.resolve("production", None).unwrap().run_as, None);
    }
    for bad in [
        "\"-rf\"",
        "../etc",
        "\"a b\"",
        "9999999999",
        "\"\"",
        "1abc",
        "\"$(id)\"",
    ] {
        let errs = errors(&with(bad));
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(
            errs[0].starts_with("13:13: ") && errs[0].contains("is not a user name or numeric uid"),
            "{bad}: {errs:?}"
        );
    }
    // Environment-level only: not a default.
    let text = GOOD.replace("  mode: \"0440\"\n", "  mode: \"0440\"\n  run_as: deploy\n");
    assert!(!errors(&text).is_empty());
}
