//! Config rules with strategy `merge` (issue 5): dpkg-style decisions against the pristine base
//! of the old pack's version, diffy three-way merges, parse checks, the conflict files
//! (`.old` = base, `.updated` = the update's, `.merged` = diff3 attempt), `--continue` with
//! `FILE.final`, `--revert`, the base from a pristine pack / distribution zip / baseline snapshot
//! in the catalog, and `--dry-run -v`.
//!
//! base = pristine file of the OLD version, ours = OLD's file, theirs = NEW's file.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{example, pack_digest, tree_digest_all, write, PackDigest, Ran, TestEnv};

const DT: &str = "repository/conf/deployment.toml";
const LOG4J2: &str = "repository/conf/log4j2.properties";
const SECRET: &str = "repository/conf/security/secret-conf.properties";
const CARBON: &str = "repository/conf/carbon.xml";
const APIM: &str = "repository/conf/api-manager.xml";

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// `carryover transplant EXTRA... ARGS...`.
fn transplant(env: &TestEnv, extra: &[&str], paths: &[&Path]) -> Ran {
    let mut args: Vec<std::ffi::OsString> = vec!["transplant".into()];
    args.extend(extra.iter().map(Into::into));
    args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
    env.run(&args)
}

/// `transplant --base BASE OLD NEW` (`base` None: no `--base`).
fn merge_into(env: &TestEnv, base: Option<&Path>, old: &Path, new: &Path, extra: &[&str]) -> Ran {
    let mut e: Vec<&str> = extra.to_vec();
    let b;
    if let Some(p) = base {
        b = p.to_str().expect("UTF-8 temp path").to_string();
        e.push("--base");
        e.push(&b);
    }
    transplant(env, &e, &[old, new])
}

fn cont(env: &TestEnv, new: &Path) -> Ran {
    transplant(env, &["--continue"], &[new])
}

fn revert(env: &TestEnv, new: &Path) -> Ran {
    transplant(env, &["--revert"], &[new])
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `path` + suffix (`.old`, `.updated`, `.merged`, `.final`).
fn side(pack: &Path, rel: &str, suffix: &str) -> PathBuf {
    pack.join(format!("{rel}{suffix}"))
}

fn assert_no_sides(pack: &Path, rel: &str) {
    for s in [".old", ".updated", ".merged", ".final"] {
        let p = side(pack, rel, s);
        assert!(!p.exists(), "{} is left behind", p.display());
    }
}

fn assert_same(what: &str, got: &PackDigest, want: &PackDigest) {
    assert!(got == want, "{what}: the tree differs:\n{}", want.diff(got));
}

/// The `configs` entry of a JSON transplant report for `path`.
fn config<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["configs"]
        .as_array()
        .expect("configs is an array")
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no config {path} in {}", report["configs"]))
}

fn parses_toml(text: &str) -> toml::Table {
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("not TOML ({e}):\n{text}"))
}

fn has_diff3_markers(text: &str) -> bool {
    let starts = |m: &str| text.lines().any(|l| l.starts_with(m));
    starts("<<<<<<<") && starts("|||||||") && starts("=======") && starts(">>>>>>>")
}

/// 4.2.0 example packs: OLD (operator: hostname + keystore password), NEW (update: a new
/// `[apim.throttling]` section), and PRISTINE, a complete pack (a copy of NEW) holding the
/// pristine `deployment.toml` of 4.2.0, usable as `--base` or for `snapshot --baseline`.
struct Fx42 {
    env: TestEnv,
    old: PathBuf,
    new: PathBuf,
    pristine: PathBuf,
}

impl Fx42 {
    fn new() -> Fx42 {
        let env = TestEnv::new();
        let old = env.copy_example("wso2am-4.2.0-old");
        fs::create_dir_all(old.join("solr/data/tlog")).unwrap();
        let new = env.copy_example("wso2am-4.2.0-new");
        let pristine = env.copy_tree(&new, "pristine-pack-4.2.0");
        fs::copy(pristine_dt(), pristine.join(DT)).unwrap();
        Fx42 {
            env,
            old,
            new,
            pristine,
        }
    }

    fn merge(&self, extra: &[&str]) -> Ran {
        merge_into(&self.env, Some(&self.pristine), &self.old, &self.new, extra)
    }
}

fn pristine_dt() -> PathBuf {
    example("pristine-4.2.0").join(DT)
}

/// The three-way picture of the example deployment.toml, merged.
fn assert_clean_toml_merge(installed: &str) {
    let t = parses_toml(installed);
    assert_eq!(
        t["server"]["hostname"].as_str(),
        Some("apim.example.com"),
        "the operator's hostname is lost:\n{installed}"
    );
    assert_eq!(
        t["keystore"]["tls"]["password"].as_str(),
        Some("s3cret-ks"),
        "the operator's keystore password is lost:\n{installed}"
    );
    assert_eq!(
        t["apim"]["throttling"]["enable_data_publishing"].as_bool(),
        Some(true),
        "the update's [apim.throttling] is lost:\n{installed}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. deployment.toml
// ---------------------------------------------------------------------------------------------

#[test]
fn deployment_toml_operator_and_update_edits_merge_cleanly() {
    let fx = Fx42::new();
    // Preconditions: OLD and NEW really both differ from the base, in different places.
    let base = read(&pristine_dt());
    let (ours, theirs) = (read(&fx.old.join(DT)), read(&fx.new.join(DT)));
    assert!(ours != base && theirs != base && ours != theirs);
    assert!(!theirs.contains("apim.example.com") && !ours.contains("[apim.throttling]"));
    let before_old = tree_digest_all(&fx.old);
    let plan = fx.merge(&["--dry-run", "--json"]);
    assert_eq!(plan.code, Some(0), "{plan}");
    let plan = plan.json();
    assert_eq!(config(&plan, DT)["fate"], "merged", "{plan}");

    let r = fx.merge(&["--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let report = r.json();
    assert_eq!(report["result"], "committed", "{report}");
    // log4j2 is identical in both packs, so it is not carried: the counts say what the plan said.
    assert_eq!(
        (&report["files"], &report["bytes"]),
        (&plan["files"], &plan["bytes"]),
        "the committed report counts files the merge decided to keep"
    );
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    let c = config(&report, DT);
    assert_eq!(c["fate"], "merged", "{c}");
    assert!(
        c["base"].as_str().unwrap_or("").contains("pristine pack"),
        "{c}"
    );
    assert_eq!(config(&report, LOG4J2)["fate"], "unchanged");

    let installed = read(&fx.new.join(DT));
    assert_clean_toml_merge(&installed);
    assert_no_sides(&fx.new, DT);
    // The source never changes.
    assert_same("OLD", &tree_digest_all(&fx.old), &before_old);
}

#[test]
fn deployment_toml_same_key_conflicts_then_continue_then_revert() {
    let fx = Fx42::new();
    // The update also changed the hostname: both sides touched the same line.
    let dt_new = fx.new.join(DT);
    let theirs = read(&dt_new).replace(
        "hostname = \"localhost\"",
        "hostname = \"update.example.com\"",
    );
    assert!(theirs.contains("update.example.com"));
    fs::write(&dt_new, &theirs).unwrap();
    let before = pack_digest(&fx.new);
    let ours = read(&fx.old.join(DT));

    let r = fx.merge(&[]);
    assert_eq!(r.code, Some(3), "a conflict exits 3: {r}");
    assert!(r.stdout.contains(DT), "the conflict is listed: {r}");
    assert!(r.stdout.contains("--continue"), "{r}");
    // The operator's version is in place; the in-place update tool's files beside it.
    assert_eq!(read(&dt_new), ours, "deployment.toml must be OLD's");
    assert_eq!(read(&side(&fx.new, DT, ".old")), read(&pristine_dt()));
    assert_eq!(read(&side(&fx.new, DT, ".updated")), theirs);
    let merged = read(&side(&fx.new, DT, ".merged"));
    assert!(has_diff3_markers(&merged), "no diff3 markers:\n{merged}");
    assert!(merged.contains("apim.example.com") && merged.contains("update.example.com"));
    // The part that did merge is in the attempt: the update's new section, the operator's password.
    assert!(merged.contains("[apim.throttling]") && merged.contains("s3cret-ks"));
    assert!(!side(&fx.new, DT, ".final").exists());

    // --continue without FILE.final: exit 3 naming it; nothing changes.
    let mid = pack_digest(&fx.new);
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(3), "{c}");
    assert!(c.both().contains("deployment.toml.final"), "{c}");
    assert_same("after a refused --continue", &pack_digest(&fx.new), &mid);

    // An unparsable FILE.final: exit 3, it is named with why.
    let fin = side(&fx.new, DT, ".final");
    fs::write(&fin, "[server\nhostname = \"x\"\n").unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(3), "{c}");
    assert!(
        c.both().contains("deployment.toml.final") && c.both().contains("TOML"),
        "{c}"
    );
    assert_eq!(
        read(&dt_new),
        ours,
        "nothing is installed from a bad .final"
    );

    // A valid resolution: the update's hostname wins, everything else merged.
    let resolution = merged_resolution(&merged);
    parses_toml(&resolution);
    fs::write(&fin, &resolution).unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(0), "{c}");
    assert_eq!(
        read(&dt_new),
        resolution,
        "the installed file is FILE.final"
    );
    assert_no_sides(&fx.new, DT);
    let t = parses_toml(&read(&dt_new));
    assert_eq!(t["server"]["hostname"].as_str(), Some("update.example.com"));
    assert_eq!(t["keystore"]["tls"]["password"].as_str(), Some("s3cret-ks"));
    // Committed: a second --continue has nothing to do.
    let again = cont(&fx.env, &fx.new);
    assert_ne!(again.code, Some(0), "{again}");

    // --revert gives back the exact pre-transplant tree.
    let rv = revert(&fx.env, &fx.new);
    assert_eq!(rv.code, Some(4), "{rv}");
    assert_same("after --revert", &pack_digest(&fx.new), &before);
}

/// Resolves a diff3-marked attempt by taking "theirs" of every conflict block.
fn merged_resolution(marked: &str) -> String {
    let mut out = String::new();
    let mut state = 0; // 0 outside, 1 ours, 2 base, 3 theirs
    for line in marked.split_inclusive('\n') {
        if line.starts_with("<<<<<<<") {
            state = 1;
        } else if line.starts_with("|||||||") && state == 1 {
            state = 2;
        } else if line.starts_with("=======") && state != 0 {
            state = 3;
        } else if line.starts_with(">>>>>>>") && state == 3 {
            state = 0;
        } else if state == 0 || state == 3 {
            out.push_str(line);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 2. 2.x XML (carbon.xml, api-manager.xml)
// ---------------------------------------------------------------------------------------------

const CARBON_BASE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- carbon.xml as WSO2 API Manager 2.6.0 ships it (abridged) -->
<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">
    <Name>WSO2 API Manager</Name>
    <ServerKey>AM</ServerKey>
    <Version>2.6.0</Version>
    <HostName>localhost</HostName>
    <MgtHostName>localhost</MgtHostName>
    <ServerURL>local:/${carbon.context}/services/</ServerURL>
    <Ports>
        <Offset>0</Offset>
        <JMX>
            <RMIRegistryPort>9999</RMIRegistryPort>
            <RMIServerPort>11111</RMIServerPort>
        </JMX>
    </Ports>
    <Security>
        <KeyStore>
            <Location>${carbon.home}/repository/resources/security/wso2carbon.jks</Location>
            <Type>JKS</Type>
            <Password>wso2carbon</Password>
            <KeyAlias>wso2carbon</KeyAlias>
        </KeyStore>
    </Security>
    <Axis2Config>
        <HideAdminServiceWSDLs>true</HideAdminServiceWSDLs>
    </Axis2Config>
</Server>
"#;

const APIM_BASE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<APIManager>
    <DataSourceName>jdbc/WSO2AM_DB</DataSourceName>
    <GatewayType>Synapse</GatewayType>
    <EnableSecureVault>false</EnableSecureVault>
    <JWTConfiguration>
        <EnableJWTGeneration>false</EnableJWTGeneration>
        <JWTHeader>X-JWT-Assertion</JWTHeader>
        <SignatureAlgorithm>SHA256withRSA</SignatureAlgorithm>
        <ClaimsRetrieverImplClass>org.wso2.carbon.apimgt.impl.token.DefaultClaimsRetriever</ClaimsRetrieverImplClass>
    </JWTConfiguration>
    <APIGateway>
        <Environments>
            <Environment type="hybrid" api-console="true">
                <Name>Production and Sandbox</Name>
            </Environment>
        </Environments>
    </APIGateway>
</APIManager>
"#;

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}

/// `<Tag>text</Tag>` of the first element named `tag` (namespaces ignored).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("not XML ({e}):\n{xml}"));
    let found = doc
        .descendants()
        .find(|n| n.tag_name().name() == tag)
        .and_then(|n| n.text().map(str::to_string));
    found
}

fn xml_parses(xml: &str) -> bool {
    roxmltree::Document::parse(xml).is_ok()
}

/// Synthetic 2.6.0 packs (mkpack) OLD, NEW and PRISTINE, with `rel` = base / ours / theirs.
struct Fx2 {
    env: TestEnv,
    old: PathBuf,
    new: PathBuf,
    pristine: PathBuf,
}

impl Fx2 {
    fn new(rel: &str, base: &str, ours: &str, theirs: &str) -> Fx2 {
        let env = TestEnv::new();
        let old = env.mkpack("2.6.0", 0.01);
        let new = env.copy_tree(&old, "new-2.6.0");
        let pristine = env.copy_tree(&old, "pristine-2.6.0");
        write(&pristine.join(rel), base);
        write(&old.join(rel), ours);
        write(&new.join(rel), theirs);
        Fx2 {
            env,
            old,
            new,
            pristine,
        }
    }

    fn merge(&self, extra: &[&str]) -> Ran {
        merge_into(&self.env, Some(&self.pristine), &self.old, &self.new, extra)
    }
}

#[test]
fn carbon_xml_operator_and_update_edits_merge_cleanly() {
    let ours = replace_once(
        &replace_once(
            CARBON_BASE,
            "<HostName>localhost</HostName>",
            "<HostName>apim.example.com</HostName>",
        ),
        "<Password>wso2carbon</Password>",
        "<Password>s3cret-ks</Password>",
    );
    let theirs = replace_once(
        CARBON_BASE,
        "        <HideAdminServiceWSDLs>true</HideAdminServiceWSDLs>\n",
        "        <HideAdminServiceWSDLs>false</HideAdminServiceWSDLs>\n        <EnableHTTPAdminConsole>false</EnableHTTPAdminConsole>\n",
    );
    let fx = Fx2::new(CARBON, CARBON_BASE, &ours, &theirs);

    let r = fx.merge(&["--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let report = r.json();
    assert_eq!(report["from_version"], "2.6.0", "{report}");
    assert_eq!(config(&report, CARBON)["fate"], "merged", "{report}");
    let installed = read(&fx.new.join(CARBON));
    assert_eq!(
        xml_text(&installed, "HostName").as_deref(),
        Some("apim.example.com")
    );
    assert_eq!(
        xml_text(&installed, "Password").as_deref(),
        Some("s3cret-ks")
    );
    assert_eq!(
        xml_text(&installed, "HideAdminServiceWSDLs").as_deref(),
        Some("false")
    );
    assert_eq!(
        xml_text(&installed, "EnableHTTPAdminConsole").as_deref(),
        Some("false")
    );
    assert_no_sides(&fx.new, CARBON);
}

#[test]
fn carbon_xml_same_line_conflict_then_continue_then_revert() {
    let ours = replace_once(
        CARBON_BASE,
        "<HostName>localhost</HostName>",
        "<HostName>apim.example.com</HostName>",
    );
    let theirs = replace_once(
        CARBON_BASE,
        "<HostName>localhost</HostName>",
        "<HostName>${carbon.host}</HostName>",
    );
    let fx = Fx2::new(CARBON, CARBON_BASE, &ours, &theirs);
    let before = pack_digest(&fx.new);

    let r = fx.merge(&["--json"]);
    assert_eq!(r.code, Some(3), "{r}");
    let report = r.json();
    assert_eq!(report["conflicts"], serde_json::json!([CARBON]), "{report}");
    let c = config(&report, CARBON);
    assert_eq!(c["fate"], "conflict", "{c}");
    assert!(c["reason"].as_str().unwrap().contains("same lines"), "{c}");
    assert_eq!(read(&fx.new.join(CARBON)), ours);
    assert_eq!(read(&side(&fx.new, CARBON, ".old")), CARBON_BASE);
    assert_eq!(read(&side(&fx.new, CARBON, ".updated")), theirs);
    assert!(has_diff3_markers(&read(&side(&fx.new, CARBON, ".merged"))));

    // A .final that is not XML is refused, naming it.
    let fin = side(&fx.new, CARBON, ".final");
    fs::write(&fin, "<Server><HostName>x</Server>\n").unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(3), "{c}");
    assert!(
        c.both().contains("carbon.xml.final") && c.both().contains("XML"),
        "{c}"
    );
    assert_eq!(read(&fx.new.join(CARBON)), ours);

    let resolution = replace_once(
        CARBON_BASE,
        "<HostName>localhost</HostName>",
        "<HostName>apim.example.com</HostName><!-- was ${carbon.host} in the update -->",
    );
    fs::write(&fin, &resolution).unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(0), "{c}");
    assert_eq!(read(&fx.new.join(CARBON)), resolution);
    assert_no_sides(&fx.new, CARBON);

    let rv = revert(&fx.env, &fx.new);
    assert_eq!(rv.code, Some(4), "{rv}");
    assert_same("after --revert", &pack_digest(&fx.new), &before);
}

#[test]
fn api_manager_xml_clean_text_merge_that_is_not_xml_is_a_conflict() {
    // The operator comments the JWT block out (its opening and closing tag lines); the update
    // adds a comment on a line inside it. Each side is valid XML, the hunks are separate, so the
    // text merges cleanly, but a comment inside a comment is not XML.
    let ours = replace_once(
        &replace_once(
            APIM_BASE,
            "    <JWTConfiguration>\n",
            "    <!-- JWT disabled by ops <JWTConfiguration>\n",
        ),
        "    </JWTConfiguration>\n",
        "    </JWTConfiguration> -->\n",
    );
    let theirs = replace_once(
        APIM_BASE,
        "<SignatureAlgorithm>SHA256withRSA</SignatureAlgorithm>",
        "<SignatureAlgorithm>SHA256withRSA</SignatureAlgorithm> <!-- U2: RS256 also accepted -->",
    );
    assert!(xml_parses(APIM_BASE) && xml_parses(&ours) && xml_parses(&theirs));
    // As text the three-way merge is clean (no markers): both edits, one invalid document.
    let text_merge = diffy::merge(APIM_BASE, &ours, &theirs).expect("a clean text merge");
    assert!(!xml_parses(&text_merge));

    let fx = Fx2::new(APIM, APIM_BASE, &ours, &theirs);
    let r = fx.merge(&["--json"]);
    assert_eq!(r.code, Some(3), "{r}");
    let report = r.json();
    assert_eq!(report["conflicts"], serde_json::json!([APIM]), "{report}");
    let c = config(&report, APIM);
    assert_eq!(c["fate"], "conflict", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.contains("XML"), "the reason names XML: {reason}");
    assert!(reason.contains("clean as text"), "{reason}");
    assert_eq!(read(&fx.new.join(APIM)), ours);
    assert_eq!(read(&side(&fx.new, APIM, ".old")), APIM_BASE);
    assert_eq!(read(&side(&fx.new, APIM, ".updated")), theirs);
    // The attempt is the clean-as-text merge: both edits, no markers.
    let attempt = read(&side(&fx.new, APIM, ".merged"));
    assert_eq!(attempt, text_merge);
    assert!(!attempt.contains("<<<<<<<"));
    // carbon.xml is the same in all three: untouched.
    assert_eq!(config(&report, CARBON)["fate"], "unchanged", "{report}");
}

// ---------------------------------------------------------------------------------------------
// 3. where the base comes from
// ---------------------------------------------------------------------------------------------

#[test]
fn base_from_a_distribution_zip_merges_cleanly() {
    let fx = Fx42::new();
    let zip = fx.env.path().join("wso2am-4.2.0.zip");
    let script = r#"
import sys, zipfile
out, dt = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for d in ["wso2am-4.2.0/", "wso2am-4.2.0/bin/", "wso2am-4.2.0/repository/", "wso2am-4.2.0/repository/conf/"]:
        z.writestr(d, "")
    z.writestr("wso2am-4.2.0/bin/version.txt", "WSO2 API Manager v4.2.0\n")
    z.write(dt, "wso2am-4.2.0/repository/conf/deployment.toml")
"#;
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&zip)
        .arg(pristine_dt())
        .status()
        .expect("run python3");
    assert!(st.success());

    let r = merge_into(&fx.env, Some(&zip), &fx.old, &fx.new, &["--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let report = r.json();
    let c = config(&report, DT);
    assert_eq!(c["fate"], "merged", "{c}");
    assert!(c["base"].as_str().unwrap().contains("distribution"), "{c}");
    assert_clean_toml_merge(&read(&fx.new.join(DT)));
    assert_no_sides(&fx.new, DT);
}

#[test]
fn base_from_the_catalogs_baseline_snapshot_merges_cleanly() {
    let fx = Fx42::new();
    // Without a base anywhere, the example's edits are a conflict (dry run: nothing changes).
    let r = merge_into(&fx.env, None, &fx.old, &fx.new, &["--dry-run", "--json"]);
    assert!(matches!(r.code, Some(0) | Some(3)), "{r}");
    assert_eq!(config(&r.json(), DT)["fate"], "conflict", "{r}");

    let base = fx.env.path().join("base.tar.zst");
    let s = fx.env.snapshot(&fx.pristine, &base, &["--baseline"]);
    assert_eq!(s["baseline"], true, "{s}");

    // No --base: the catalog's newest baseline of wso2am 4.2.0 is used.
    let r = merge_into(&fx.env, None, &fx.old, &fx.new, &["--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let report = r.json();
    let c = config(&report, DT);
    assert_eq!(c["fate"], "merged", "{c}");
    assert!(
        c["base"].as_str().unwrap().contains("baseline snapshot"),
        "{c}"
    );
    assert_clean_toml_merge(&read(&fx.new.join(DT)));
    assert_no_sides(&fx.new, DT);
}

#[test]
fn a_baseline_snapshot_passed_as_base_merges_an_archive_source() {
    let fx = Fx42::new();
    let base = fx.env.path().join("base.tar.zst");
    fx.env.snapshot(&fx.pristine, &base, &["--baseline"]);
    let old_archive = fx.env.path().join("old.tar.zst");
    fx.env.snapshot(&fx.old, &old_archive, &[]);

    let r = merge_into(&fx.env, Some(&base), &old_archive, &fx.new, &["--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let report = r.json();
    assert_eq!(report["source_kind"], "archive");
    assert_eq!(config(&report, DT)["fate"], "merged", "{report}");
    assert_clean_toml_merge(&read(&fx.new.join(DT)));
}

#[test]
fn without_any_base_differing_files_conflict() {
    let fx = Fx42::new();
    let ours = read(&fx.old.join(DT));
    let theirs = read(&fx.new.join(DT));
    let r = merge_into(&fx.env, None, &fx.old, &fx.new, &["--json"]);
    assert_eq!(r.code, Some(3), "{r}");
    let report = r.json();
    assert_eq!(report["conflicts"], serde_json::json!([DT]), "{report}");
    let c = config(&report, DT);
    assert_eq!(c["fate"], "conflict");
    assert!(c["reason"].as_str().unwrap().contains("base"), "{c}");
    // log4j2 is identical in OLD and NEW: no base is needed for that.
    assert_eq!(config(&report, LOG4J2)["fate"], "unchanged");
    assert_eq!(read(&fx.new.join(DT)), ours);
    assert_eq!(read(&side(&fx.new, DT, ".updated")), theirs);
    assert!(
        !side(&fx.new, DT, ".old").exists(),
        "there is no base to write"
    );
    let attempt = read(&side(&fx.new, DT, ".merged"));
    assert!(attempt.contains("apim.example.com") && attempt.contains("[apim.throttling]"));
}

// ---------------------------------------------------------------------------------------------
// 4. dry run
// ---------------------------------------------------------------------------------------------

#[test]
fn dry_run_verbose_shows_every_fate_and_diffs_and_changes_nothing() {
    let fx = Fx42::new();
    // secret-conf: only the operator changed it (keep yours); log4j2: only the update (take new).
    let secret = "keystore.identity.location=repository/resources/security/wso2carbon.jks\nsecretRepositories=file\n";
    write(&fx.pristine.join(SECRET), secret);
    write(&fx.new.join(SECRET), secret);
    write(
        &fx.old.join(SECRET),
        &secret.replace("secretRepositories=file", "secretRepositories=vault"),
    );
    let log4j2 = read(&fx.new.join(LOG4J2));
    assert_eq!(read(&fx.old.join(LOG4J2)), log4j2);
    fs::write(
        fx.new.join(LOG4J2),
        format!("{log4j2}logger.update.name = org.wso2.update\n"),
    )
    .unwrap();

    let new_before = pack_digest(&fx.new);
    let old_before = tree_digest_all(&fx.old);
    let catalog_before = fs::read(fx.env.catalog()).ok();

    let r = fx.merge(&["--dry-run", "-v"]);
    assert_eq!(r.code, Some(0), "{r}");
    let fate = |path: &str| {
        r.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("config {path} ")))
            .unwrap_or_else(|| panic!("no config line for {path}:\n{}", r.stdout))
            .to_string()
    };
    assert!(fate(DT).contains(" merged "), "{}", fate(DT));
    assert!(fate(LOG4J2).contains(" take new "), "{}", fate(LOG4J2));
    assert!(fate(SECRET).contains(" keep yours "), "{}", fate(SECRET));
    // The unified diffs from the new pack's file to the result.
    let lines: Vec<&str> = r.stdout.lines().map(str::trim_start).collect();
    for want in [
        "-hostname = \"localhost\"",
        "+hostname = \"apim.example.com\"",
        "-secretRepositories=file",
        "+secretRepositories=vault",
    ] {
        assert!(
            lines.contains(&want),
            "no diff line {want:?}:\n{}",
            r.stdout
        );
    }
    assert!(lines.iter().any(|l| l.starts_with("@@ ")), "{}", r.stdout);
    // Without -v: the fates, no diff.
    let quiet = fx.merge(&["--dry-run"]);
    assert_eq!(quiet.code, Some(0), "{quiet}");
    assert!(quiet.stdout.contains(" take new "), "{quiet}");
    assert!(!quiet.stdout.contains("+hostname"), "{quiet}");

    // The other two fates: log4j2 back to OLD's (unchanged), NEW's hostname edited (conflict).
    fs::write(fx.new.join(LOG4J2), &log4j2).unwrap();
    let dt = read(&fx.new.join(DT)).replace("\"localhost\"", "\"update.example.com\"");
    fs::write(fx.new.join(DT), dt).unwrap();
    let new_before2 = pack_digest(&fx.new);
    let r2 = fx.merge(&["--dry-run", "-v"]);
    assert!(matches!(r2.code, Some(0) | Some(3)), "{r2}");
    let line = |path: &str| {
        r2.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("config {path} ")))
            .unwrap_or_else(|| panic!("no config line for {path}:\n{}", r2.stdout))
            .to_string()
    };
    assert!(line(DT).contains(" conflict "), "{}", line(DT));
    assert!(line(LOG4J2).contains(" unchanged "), "{}", line(LOG4J2));

    // Nothing changed anywhere: neither pack, nor a transaction, nor the catalog.
    assert_same("NEW after dry runs", &pack_digest(&fx.new), &new_before2);
    assert!(no_txn(&fx.new), "a dry run began a transaction");
    assert_same("OLD", &tree_digest_all(&fx.old), &old_before);
    assert_eq!(fs::read(fx.env.catalog()).ok(), catalog_before);
    assert_ne!(
        new_before, new_before2,
        "the test itself edited NEW in between"
    );
}

/// No transaction directory in `.carryover/txn` (the lock file does not count).
fn no_txn(pack: &Path) -> bool {
    fs::read_dir(pack.join(".carryover/txn"))
        .map(|rd| rd.count() == 0)
        .unwrap_or(true)
}

// ---------------------------------------------------------------------------------------------
// 5. exit codes and the JSON report; several conflicts
// ---------------------------------------------------------------------------------------------

#[test]
fn every_conflicting_file_is_listed_and_each_needs_its_final() {
    let fx = Fx42::new();
    // deployment.toml: same key; log4j2: the same line changed both ways.
    let dt_new = read(&fx.new.join(DT)).replace("\"localhost\"", "\"update.example.com\"");
    fs::write(fx.new.join(DT), dt_new).unwrap();
    let log4j2 = read(&fx.old.join(LOG4J2));
    let first = log4j2.lines().next().expect("log4j2 has lines").to_string();
    fs::write(fx.pristine.join(LOG4J2), &log4j2).unwrap();
    fs::write(
        fx.old.join(LOG4J2),
        log4j2.replacen(&first, &format!("{first} # ops"), 1),
    )
    .unwrap();
    fs::write(
        fx.new.join(LOG4J2),
        log4j2.replacen(&first, &format!("{first} # update"), 1),
    )
    .unwrap();
    let before = pack_digest(&fx.new);

    let r = fx.merge(&["--json"]);
    assert_eq!(r.code, Some(3), "{r}");
    let report = r.json();
    assert_eq!(report["result"], "conflicts", "{report}");
    let mut listed: Vec<String> = report["conflicts"]
        .as_array()
        .expect("conflicts is an array")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, vec![DT.to_string(), LOG4J2.to_string()], "{report}");

    // Only deployment.toml resolved: exit 3 naming log4j2's .final.
    let resolved_dt = merged_resolution(&read(&side(&fx.new, DT, ".merged")));
    fs::write(side(&fx.new, DT, ".final"), &resolved_dt).unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(3), "{c}");
    assert!(c.both().contains("log4j2.properties.final"), "{c}");
    assert!(!c.both().contains("deployment.toml.final"), "{c}");
    assert_eq!(
        read(&fx.new.join(DT)),
        read(&fx.old.join(DT)),
        "nothing installed yet"
    );

    fs::write(side(&fx.new, LOG4J2, ".final"), &log4j2).unwrap();
    let c = transplant(&fx.env, &["--continue", "--json"], &[&fx.new]);
    assert_eq!(c.code, Some(0), "{c}");
    let mut resolved: Vec<String> = c.json()["resolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    resolved.sort();
    assert_eq!(resolved, listed);
    assert_eq!(read(&fx.new.join(DT)), resolved_dt);
    assert_eq!(read(&fx.new.join(LOG4J2)), log4j2);
    assert_no_sides(&fx.new, DT);
    assert_no_sides(&fx.new, LOG4J2);

    let rv = revert(&fx.env, &fx.new);
    assert_eq!(rv.code, Some(4), "{rv}");
    assert_same("after --revert", &pack_digest(&fx.new), &before);
}

#[test]
fn text_output_of_a_conflict_names_each_file_and_the_way_out() {
    let fx = Fx42::new();
    let dt_new = read(&fx.new.join(DT)).replace("\"localhost\"", "\"update.example.com\"");
    fs::write(fx.new.join(DT), dt_new).unwrap();
    let r = fx.merge(&["--quiet"]);
    assert_eq!(r.code, Some(3), "{r}");
    for want in [
        "CONFLICTS",
        &format!("{DT}.old"),
        &format!("{DT}.updated"),
        &format!("{DT}.merged"),
        &format!("{DT}.final"),
        "--continue",
    ] {
        assert!(r.stdout.contains(want), "no {want:?} in:\n{r}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. one transplant at a time
// ---------------------------------------------------------------------------------------------

#[test]
fn a_pack_awaiting_continue_refuses_another_transplant() {
    let fx = Fx42::new();
    let dt_new = read(&fx.new.join(DT)).replace("\"localhost\"", "\"update.example.com\"");
    fs::write(fx.new.join(DT), dt_new).unwrap();
    let r = fx.merge(&[]);
    assert_eq!(r.code, Some(3), "{r}");
    let awaiting = pack_digest(&fx.new);

    for extra in [&[][..], &["--dry-run"][..]] {
        let again = fx.merge(extra);
        assert_eq!(again.code, Some(3), "{extra:?}: {again}");
        assert!(again.stderr.contains("--continue"), "{again}");
        assert_same("after the refusal", &pack_digest(&fx.new), &awaiting);
    }
    // The awaiting transplant is still the one --continue finishes.
    let merged = read(&side(&fx.new, DT, ".merged"));
    fs::write(side(&fx.new, DT, ".final"), merged_resolution(&merged)).unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(0), "{c}");
    // And once committed, a new transplant is allowed again (here: a no-op replay).
    let later = fx.merge(&["--dry-run", "--force"]);
    assert_eq!(later.code, Some(0), "{later}");
}

#[test]
fn reverting_a_transplant_that_awaits_continue_restores_the_exact_tree() {
    let fx = Fx42::new();
    let dt_new = read(&fx.new.join(DT)).replace("\"localhost\"", "\"update.example.com\"");
    fs::write(fx.new.join(DT), dt_new).unwrap();
    let before = pack_digest(&fx.new);
    let r = fx.merge(&[]);
    assert_eq!(r.code, Some(3), "{r}");
    assert!(side(&fx.new, DT, ".merged").exists());
    // Recovery leaves an awaiting transplant alone.
    let rec = transplant(&fx.env, &["--recover"], &[&fx.new]);
    assert_eq!(rec.code, Some(0), "{rec}");
    assert!(side(&fx.new, DT, ".merged").exists(), "{rec}");

    let rv = revert(&fx.env, &fx.new);
    assert_eq!(rv.code, Some(4), "{rv}");
    assert_same("after --revert", &pack_digest(&fx.new), &before);
    // Nothing awaits any more: --continue has nothing to do, a new transplant may run.
    assert_ne!(cont(&fx.env, &fx.new).code, Some(0));
    assert_eq!(fx.merge(&["--dry-run"]).code, Some(0));
}

// ---------------------------------------------------------------------------------------------
// crash inside --continue (failpoints build)
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "failpoints")]
#[test]
fn a_crash_inside_continue_is_finished_by_the_next_continue() {
    use std::os::unix::process::ExitStatusExt;
    let fx = Fx42::new();
    let dt_new = read(&fx.new.join(DT)).replace("\"localhost\"", "\"update.example.com\"");
    fs::write(fx.new.join(DT), dt_new).unwrap();
    let before = pack_digest(&fx.new);
    assert_eq!(fx.merge(&[]).code, Some(3));
    let resolution = merged_resolution(&read(&side(&fx.new, DT, ".merged")));
    fs::write(side(&fx.new, DT, ".final"), &resolution).unwrap();

    // Abort right after the journal says "resolved", before .final is installed.
    let out = fx
        .env
        .std_cmd()
        .args(["transplant", "--continue"])
        .arg(&fx.new)
        .env("CARRYOVER_FAILPOINT", "continue-after-resolved")
        .output()
        .expect("run carryover");
    assert_eq!(
        out.status.signal(),
        Some(6),
        "aborted at the failpoint: {out:?}"
    );
    assert!(side(&fx.new, DT, ".final").exists());

    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(0), "{c}");
    assert_eq!(
        read(&fx.new.join(DT)),
        resolution,
        "the resolution must be installed, not the operator's old file"
    );
    assert_no_sides(&fx.new, DT);
    let rv = revert(&fx.env, &fx.new);
    assert_eq!(rv.code, Some(4), "{rv}");
    assert_same("after --revert", &pack_digest(&fx.new), &before);
}

#[test]
fn verify_against_after_a_merged_transplant_passes_and_says_so() {
    let fx = Fx42::new();
    let archive = fx.env.path().join("old.tar.zst");
    fx.env.snapshot(&fx.old, &archive, &[]);
    let r = merge_into(&fx.env, Some(&fx.pristine), &archive, &fx.new, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    // The merged deployment.toml differs from the snapshot by design: a warning, not a mismatch.
    let v = fx.env.run([
        "verify".as_ref(),
        "--json".as_ref(),
        archive.as_os_str(),
        "--against".as_ref(),
        fx.new.as_os_str(),
    ]);
    assert_eq!(v.code, Some(0), "{v}");
    let report = v.json();
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    let warned = report["warnings"].as_array().unwrap().iter().any(|w| {
        let w = w.as_str().unwrap_or("");
        w.contains(DT) && w.contains("merged")
    });
    assert!(warned, "{report}");
    // Any other change is still a mismatch.
    fs::write(fx.new.join("repository/data/org.example/state.json"), b"{}").unwrap();
    let v = fx.env.run([
        "verify".as_ref(),
        archive.as_os_str(),
        "--against".as_ref(),
        fx.new.as_os_str(),
    ]);
    assert_eq!(v.code, Some(5), "{v}");
}

/// Issue 9 item 13: a `FILE.final` that still holds diff3 markers is refused for every format
/// (a text config parses whatever it holds), naming the file and the line.
#[test]
fn continue_refuses_a_final_with_conflict_markers() {
    let fx = Fx42::new();
    let log4j2 = read(&fx.old.join(LOG4J2));
    let first = log4j2.lines().next().expect("log4j2 has lines").to_string();
    fs::write(fx.pristine.join(LOG4J2), &log4j2).unwrap();
    fs::write(
        fx.old.join(LOG4J2),
        log4j2.replacen(&first, &format!("{first} # ops"), 1),
    )
    .unwrap();
    fs::write(
        fx.new.join(LOG4J2),
        log4j2.replacen(&first, &format!("{first} # update"), 1),
    )
    .unwrap();
    let r = fx.merge(&[]);
    assert_eq!(r.code, Some(3), "{r}");
    let merged = read(&side(&fx.new, LOG4J2, ".merged"));
    assert!(merged.contains("<<<<<<< "), "{merged}");
    // The diff3 attempt written back unchanged as the resolution.
    fs::write(side(&fx.new, LOG4J2, ".final"), &merged).unwrap();
    let installed_before = read(&fx.new.join(LOG4J2));
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(3), "{c}");
    assert!(c.both().contains("log4j2.properties.final"), "{c}");
    assert!(c.both().contains("line 1"), "{c}");
    assert!(c.both().contains("conflict marker"), "{c}");
    assert_eq!(
        read(&fx.new.join(LOG4J2)),
        installed_before,
        "nothing installed"
    );
    // Markers only mid-file: named with their line.
    let fixed = format!("{first}\n=======\n");
    fs::write(side(&fx.new, LOG4J2, ".final"), &fixed).unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(3), "{c}");
    assert!(c.both().contains("line 2"), "{c}");
    fs::write(side(&fx.new, LOG4J2, ".final"), &log4j2).unwrap();
    let c = cont(&fx.env, &fx.new);
    assert_eq!(c.code, Some(0), "{c}");
}
