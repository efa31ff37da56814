//! Structural checks of the deployment files: the Dockerfile's runtime stage,
//! deploy/kubernetes.yaml and deploy/kustomization.yaml. `.ci/deploy-checks` adds hadolint,
//! Kubernetes schema checks, a render of the kustomization and a real run of the Dockerfile's
//! builder stage in a bookworm root; these run on every `cargo test`.
//!
//! Each checker returns the list of problems it found, and the `*_rejects_*` tests feed it
//! broken copies of the real files, so a checker that stopped looking would fail here.

use std::path::Path;
use std::process::Command;

/// A file of the repository, by its path from the workspace root (this package is `cli/`).
fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---- Dockerfile ------------------------------------------------------------------------------

/// Instructions as (KEYWORD, arguments), comments dropped and `\` continuations joined.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (kw, rest) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        out.push((kw.to_ascii_uppercase(), rest.trim().to_owned()));
    }
    out
}

/// An exec-form (JSON array) argument list, or None for shell form.
fn exec_form(args: &str) -> Option<Vec<String>> {
    serde_json::from_str(args).ok()
}

fn dockerfile_problems(dockerfile: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let all = instructions(dockerfile);
    let Some(last_from) = all.iter().rposition(|(kw, _)| kw == "FROM") else {
        return vec!["no FROM".into()];
    };
    let (builder, runtime) = all.split_at(last_from);
    let get = |kw: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(k, _)| k == kw)
            .map(|(_, a)| a.as_str())
            .collect()
    };

    // Builder: the locked release build of the binary, with cached registry and target dirs.
    let build = builder
        .iter()
        .find(|(kw, args)| kw == "RUN" && args.contains("cargo build"));
    match build {
        None => problems.push("no RUN cargo build before the runtime stage".into()),
        Some((_, run)) => {
            for needle in [
                "--release",
                "--locked",
                "--bin pipelined",
                "--mount=type=cache,target=/usr/local/cargo/registry",
                "--mount=type=cache,target=/app/target",
            ] {
                if !run.contains(needle) {
                    problems.push(format!("the cargo build RUN lacks `{needle}`"));
                }
            }
        }
    }

    // Runtime: non-root.
    let base = runtime[0].1.as_str();
    let users = get("USER");
    let user = users
        .last()
        .map(|u| u.split(':').next().unwrap_or(u).trim());
    match user {
        Some("root") | Some("0") => problems.push("the runtime stage runs as root".into()),
        Some(_) => {}
        None if base.contains(":nonroot") => {}
        None => problems.push("no USER and the base image is not a nonroot one".into()),
    }

    // ENTRYPOINT / CMD in exec form, so the binary is PID 1 and receives SIGTERM itself.
    let entry = get("ENTRYPOINT").last().and_then(|a| exec_form(a));
    let binary = match &entry {
        Some(argv) if !argv.is_empty() => argv[0].clone(),
        _ => {
            problems.push("ENTRYPOINT missing or not in exec form".into());
            String::new()
        }
    };
    if !binary.is_empty()
        && !get("COPY")
            .iter()
            .any(|c| c.starts_with("--from=") && c.ends_with(&format!(" {binary}")))
    {
        problems.push(format!("nothing COPY --from's the binary to {binary}"));
    }
    if get("CMD").last().is_none_or(|a| exec_form(a).is_none()) {
        problems.push("CMD missing or not in exec form".into());
    }

    // HEALTHCHECK runs `pipelined health` in exec form (no shell, no curl in the image).
    match get("HEALTHCHECK").last() {
        None => problems.push("no HEALTHCHECK".into()),
        Some(hc) => match hc.split_once("CMD ").and_then(|(_, c)| exec_form(c.trim())) {
            Some(argv)
                if argv.len() >= 2
                    && argv[0].ends_with("/pipelined")
                    && argv[0] == binary
                    && argv[1] == "health" => {}
            _ => problems.push(format!(
                "HEALTHCHECK is not an exec-form `{binary} health`: {hc}"
            )),
        },
    }

    // The bind address, EXPOSE and the stop signal agree.
    if !get("EXPOSE")
        .iter()
        .any(|e| e.split_whitespace().any(|p| p == "8080" || p == "8080/tcp"))
    {
        problems.push("no EXPOSE 8080".into());
    }
    if !get("ENV").iter().any(|e| {
        e.split_whitespace()
            .any(|kv| kv == "PIPELINED_BIND=0.0.0.0:8080")
    }) {
        problems.push("no ENV PIPELINED_BIND=0.0.0.0:8080".into());
    }
    if get("STOPSIGNAL").last().copied() != Some("SIGTERM") {
        problems.push("STOPSIGNAL is not SIGTERM".into());
    }
    problems
}

#[test]
fn dockerfile_is_sound() {
    let problems = dockerfile_problems(&read("Dockerfile"));
    assert!(problems.is_empty(), "Dockerfile: {problems:#?}");
}

#[test]
fn dockerfile_checker_rejects_broken_copies() {
    let good = read("Dockerfile");
    let broken = [
        (
            r#"ENTRYPOINT ["/usr/local/bin/pipelined"]"#,
            "ENTRYPOINT /usr/local/bin/pipelined",
        ),
        (r#""health"]"#, r#""send"]"#),
        ("USER 65532:65532", "USER root"),
        ("EXPOSE 8080", "EXPOSE 9090"),
        ("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGINT"),
        ("--locked ", ""),
        (
            "PIPELINED_BIND=0.0.0.0:8080",
            "PIPELINED_BIND=127.0.0.1:8080",
        ),
    ];
    for (from, to) in broken {
        assert!(
            good.contains(from),
            "Dockerfile no longer contains `{from}`"
        );
        let bad = good.replacen(from, to, 1);
        assert!(
            !dockerfile_problems(&bad).is_empty(),
            "replacing `{from}` with `{to}` went unnoticed"
        );
    }
    // Dropping USER is fine only while the base image is a nonroot one.
    let no_user = good.replacen("USER 65532:65532", "", 1);
    assert!(dockerfile_problems(&no_user).is_empty());
    let root_base = no_user.replacen("cc-debian12:nonroot", "cc-debian12", 1);
    assert!(!dockerfile_problems(&root_base).is_empty());
}

// ---- deploy/kubernetes.yaml ------------------------------------------------------------------

/// Lines with comments stripped, as (indent, text).
fn yaml_lines(yaml: &str) -> Vec<(usize, &str)> {
    yaml.lines()
        .map(|l| l.split(" #").next().unwrap_or(l))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| (l.len() - l.trim_start().len(), l.trim()))
        .collect()
}

/// The lines nested under the first line equal to `key:` (a tiny, indentation-only parser).
fn block<'a>(lines: &[(usize, &'a str)], key: &str) -> Option<Vec<&'a str>> {
    let start = lines
        .iter()
        .position(|(_, t)| t.trim_start_matches("- ") == format!("{key}:"))?;
    let indent = lines[start].0;
    Some(
        lines[start + 1..]
            .iter()
            .take_while(|(i, _)| *i > indent)
            .map(|(_, t)| t.trim_start_matches("- "))
            .collect(),
    )
}

fn value<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')
            .map(|v| v.trim().trim_matches('"'))
    })
}

/// The binary's `--shutdown-timeout` default, read from its own `serve --help`.
fn binary_drain_secs() -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .args(["serve", "--help"])
        .output()
        .expect("run pipelined serve --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let at = help
        .find("--shutdown-timeout")
        .expect("--shutdown-timeout in help");
    let rest = &help[at..];
    let d = rest
        .find("[default: ")
        .expect("a default for --shutdown-timeout")
        + 10;
    rest[d..rest[d..].find(']').unwrap() + d].parse().unwrap()
}

/// The image name the manifest commits and deploy/kustomization.yaml replaces.
const IMAGE: &str = "pipelined";

fn manifest_problems(yaml: &str, binary_drain: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let docs: Vec<&str> = yaml.split("\n---").collect();
    let kind = |d: &&str| {
        yaml_lines(d)
            .iter()
            .find_map(|(_, t)| t.strip_prefix("kind:").map(str::trim).map(str::to_owned))
    };
    let Some(deploy) = docs
        .iter()
        .find(|d| kind(d).as_deref() == Some("Deployment"))
    else {
        return vec!["no Deployment".into()];
    };
    let lines = yaml_lines(deploy);
    let flat: Vec<&str> = lines
        .iter()
        .map(|(_, t)| t.trim_start_matches("- "))
        .collect();

    let replicas: u32 = value(&flat, "replicas")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if replicas < 2 {
        problems.push(format!("replicas is {replicas}, want at least 2"));
    }
    // The registry is the deployer's to set (deploy/kustomization.yaml); a committed one is a
    // placeholder that a plain `kubectl apply` would try to pull.
    match value(&flat, "image") {
        Some(IMAGE) => {}
        image => problems.push(format!(
            "the container image is {image:?}, want the bare name `{IMAGE}` that \
             kustomization.yaml's `images:` sets"
        )),
    }
    if value(&flat, "containerPort") != Some("8080") {
        problems.push("containerPort is not 8080".into());
    }
    let bind = flat
        .iter()
        .position(|l| *l == "name: PIPELINED_BIND")
        .and_then(|i| value(&flat[i + 1..i + 2], "value"));
    if bind != Some("0.0.0.0:8080") {
        problems.push(format!("env PIPELINED_BIND is {bind:?}, want 0.0.0.0:8080"));
    }
    for probe in ["livenessProbe", "readinessProbe"] {
        match block(&lines, probe) {
            None => problems.push(format!("no {probe}")),
            Some(b) => {
                let port = value(&b, "port");
                if !b.contains(&"httpGet:")
                    || value(&b, "path") != Some("/healthz")
                    || !matches!(port, Some("8080") | Some("http"))
                {
                    problems.push(format!("{probe} is not httpGet /healthz on 8080: {b:?}"));
                }
            }
        }
    }
    for (key, want) in [
        ("runAsNonRoot", "true"),
        ("readOnlyRootFilesystem", "true"),
        ("allowPrivilegeEscalation", "false"),
    ] {
        if value(&flat, key) != Some(want) {
            problems.push(format!("securityContext {key} is not {want}"));
        }
    }
    for key in ["requests", "limits"] {
        let b = block(&lines, key).unwrap_or_default();
        if value(&b, "cpu").is_none() || value(&b, "memory").is_none() {
            problems.push(format!("resources.{key} lacks cpu or memory"));
        }
    }

    // The kubelet SIGKILLs when the grace period ends: it must outlast the binary's drain.
    let args = flat
        .iter()
        .find_map(|l| l.strip_prefix("args:"))
        .unwrap_or("");
    let drain = args
        .split(|c: char| c == ',' || c.is_whitespace() || c == '[' || c == ']')
        .map(|a| a.trim_matches('"'))
        .filter(|a| !a.is_empty())
        .skip_while(|a| *a != "--shutdown-timeout")
        .nth(1)
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX))
        .unwrap_or(binary_drain);
    match value(&flat, "terminationGracePeriodSeconds").and_then(|v| v.parse::<u64>().ok()) {
        Some(grace) if grace > drain => {}
        grace => problems.push(format!(
            "terminationGracePeriodSeconds {grace:?} is not longer than the {drain} s drain"
        )),
    }

    match docs.iter().find(|d| kind(d).as_deref() == Some("Service")) {
        None => problems.push("no Service".into()),
        Some(svc) => {
            let svc: Vec<&str> = yaml_lines(svc)
                .iter()
                .map(|(_, t)| t.trim_start_matches("- "))
                .collect();
            if value(&svc, "port") != Some("80")
                || !matches!(value(&svc, "targetPort"), Some("8080") | Some("http"))
            {
                problems.push("Service does not map port 80 to 8080".into());
            }
        }
    }
    problems
}

/// deploy/kustomization.yaml applies the manifest and holds the image override, with the
/// registry and tag left for the deployer (`kustomize edit set image`) rather than made up.
fn kustomization_problems(yaml: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lines = yaml_lines(yaml);
    let flat: Vec<&str> = lines
        .iter()
        .map(|(_, t)| t.trim_start_matches("- "))
        .collect();
    if value(&flat, "kind") != Some("Kustomization") {
        problems.push("kind is not Kustomization".into());
    }
    if !block(&lines, "resources").is_some_and(|r| r.contains(&"kubernetes.yaml")) {
        problems.push("resources does not list kubernetes.yaml".into());
    }
    match block(&lines, "images") {
        None => problems.push("no images: entry to set the image with".into()),
        Some(images) => {
            if value(&images, "name") != Some(IMAGE) {
                problems.push(format!(
                    "images: does not name the manifest's image `{IMAGE}`"
                ));
            }
            for key in ["newName", "newTag", "digest"] {
                if let Some(v) = value(&images, key) {
                    problems.push(format!("images: commits {key}: {v}, the deployer's to set"));
                }
            }
        }
    }
    problems
}

#[test]
fn kustomization_is_sound() {
    let problems = kustomization_problems(&read("deploy/kustomization.yaml"));
    assert!(
        problems.is_empty(),
        "deploy/kustomization.yaml: {problems:#?}"
    );
}

#[test]
fn kustomization_checker_rejects_broken_copies() {
    let good = read("deploy/kustomization.yaml");
    let broken = [
        ("  - kubernetes.yaml", "  - other.yaml"),
        ("  - name: pipelined", "  - name: ghcr.io/example/pipelined"),
        (
            "  - name: pipelined",
            "  - name: pipelined\n    newName: ghcr.io/example/pipelined",
        ),
        (
            "  - name: pipelined",
            "  - name: pipelined\n    newTag: 0.1.0",
        ),
        ("kind: Kustomization", "kind: Component"),
    ];
    for (from, to) in broken {
        assert!(
            good.contains(from),
            "kustomization no longer contains `{from}`"
        );
        let bad = good.replacen(from, to, 1);
        assert!(
            !kustomization_problems(&bad).is_empty(),
            "replacing `{from}` with `{to}` went unnoticed"
        );
    }
}

#[test]
fn kubernetes_manifest_is_sound() {
    let drain = binary_drain_secs();
    let problems = manifest_problems(&read("deploy/kubernetes.yaml"), drain);
    assert!(problems.is_empty(), "deploy/kubernetes.yaml: {problems:#?}");
}

#[test]
fn kubernetes_checker_rejects_broken_copies() {
    let good = read("deploy/kubernetes.yaml");
    let broken = [
        (
            "terminationGracePeriodSeconds: 35",
            "terminationGracePeriodSeconds: 30",
        ),
        ("terminationGracePeriodSeconds: 35", ""),
        (
            r#""--shutdown-timeout", "30""#,
            r#""--shutdown-timeout", "60""#,
        ),
        ("containerPort: 8080", "containerPort: 9090"),
        ("path: /healthz", "path: /"),
        ("readinessProbe:", "startupProbe:"),
        (
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        ),
        (
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
        ),
        ("replicas: 2", "replicas: 1"),
        ("targetPort: 8080", "targetPort: 9090"),
        ("value: \"0.0.0.0:8080\"", "value: \"127.0.0.1:8080\""),
        ("image: pipelined", "image: ghcr.io/example/pipelined:0.1.0"),
        ("image: pipelined", "image: pipelined:0.1.0"),
    ];
    for (from, to) in broken {
        assert!(good.contains(from), "manifest no longer contains `{from}`");
        let bad = good.replacen(from, to, 1);
        assert!(
            !manifest_problems(&bad, 30).is_empty(),
            "replacing `{from}` with `{to}` went unnoticed"
        );
    }
    // Without explicit args the binary's own default drain is what the grace period must beat.
    let no_args = good.replacen(r#"args: ["serve", "--shutdown-timeout", "30"]"#, "", 1);
    assert!(manifest_problems(&no_args, 30).is_empty());
    assert!(!manifest_problems(&no_args, 40).is_empty());
}
