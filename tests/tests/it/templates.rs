//! The rendered CloudFormation, for every supported region: registered files, snapshots, cfn-lint,
//! checkov, the Glue schema against sdp-core's lake schema, and the security defaults of
//! CONTRACT.md §7.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_yaml_ng::Value;

use sdp::{regions, render, templates};
use sdp_core::lake::{Format, DATASETS, PARTITION_KEYS};
use sdp_scenarios::{repo_root, stems, venv_tool};

fn rendered(region: &str) -> Result<String> {
    let config = regions::load(region)?;
    Ok(render::render_platform(&templates::embedded(), &config)?.text)
}

/// The rendered template of every supported region, by region.
fn all_rendered() -> Result<BTreeMap<&'static str, String>> {
    regions::supported()
        .into_iter()
        .map(|r| Ok((r, rendered(r)?)))
        .collect()
}

fn parsed(region: &str) -> Result<Value> {
    Ok(serde_yaml_ng::from_str(&rendered(region)?)?)
}

fn resources(template: &Value) -> Vec<(String, &Value)> {
    template["Resources"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v))
                .collect()
        })
        .unwrap_or_default()
}

fn of_type<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    resources(template)
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

#[test]
fn every_region_file_is_embedded_and_every_embedded_region_has_a_file() -> Result<()> {
    let on_disk = stems(&repo_root().join("regions"), ".yaml")?;
    assert_eq!(on_disk, regions::supported());
    Ok(())
}

#[test]
fn every_partial_file_is_registered() -> Result<()> {
    let on_disk = stems(&repo_root().join("templates/partials"), ".yaml.hbs")?;
    let mut registered: Vec<String> = templates::embedded()
        .partials
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    registered.sort();
    assert_eq!(on_disk, registered);
    Ok(())
}

#[test]
fn rendered_template_matches_its_reviewed_snapshot_in_every_region() -> Result<()> {
    for (region, text) in all_rendered()? {
        insta::assert_snapshot!(format!("template-{region}"), text);
    }
    Ok(())
}

#[test]
fn rendered_template_passes_cfn_lint_in_its_own_region() -> Result<()> {
    let dir = tempdir("cfn-lint")?;
    let cfn_lint = venv_tool("cfn-lint")?;
    // One process per region, run side by side: each lints the template against its region.
    let runs: Vec<_> = all_rendered()?
        .into_iter()
        .map(|(region, text)| {
            let path = dir.join(format!("sdp-{region}.yaml"));
            std::fs::write(&path, text)?;
            let child = Command::new(&cfn_lint)
                .args(["--regions", region, "--format", "parseable", "--"])
                .arg(&path)
                .output();
            Ok((region, child))
        })
        .collect::<Result<_>>()?;
    for (region, output) in runs {
        let output = output.context("running cfn-lint")?;
        let findings = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && findings.trim().is_empty(),
            "cfn-lint found problems in {region} (exit {:?}):\n{findings}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[test]
fn rendered_template_passes_checkov_and_every_skip_has_a_reason() -> Result<()> {
    let dir = tempdir("checkov")?;
    for (region, text) in all_rendered()? {
        std::fs::write(dir.join(format!("sdp-{region}.yaml")), text)?;
    }
    let output = Command::new(venv_tool("checkov")?)
        .args([
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
            "--directory",
        ])
        .arg(&dir)
        .output()
        .context("running checkov")?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "checkov printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let summary = &report["summary"];
    assert_eq!(
        summary["parsing_errors"], 0,
        "checkov could not parse: {summary}"
    );
    assert!(
        summary["passed"].as_u64() > Some(100),
        "checkov ran too few checks: {summary}"
    );
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {} {}", c["check_id"], c["resource"], c["check_name"]))
        .collect();
    assert!(
        failed.is_empty(),
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
    for skip in report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let reason = skip["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or_default();
        assert!(
            reason.len() > 20,
            "skip of {} on {} has no reason",
            skip["check_id"],
            skip["resource"]
        );
    }
    Ok(())
}

#[test]
fn glue_tables_declare_exactly_the_lake_schema_of_sdp_core() -> Result<()> {
    let template = parsed("us-west-2")?;
    let tables: BTreeMap<String, &Value> = of_type(&template, "AWS::Glue::Table")
        .into_iter()
        .map(|(_, t)| {
            let input = &t["Properties"]["TableInput"];
            (input["Name"].as_str().unwrap_or_default().to_owned(), input)
        })
        .collect();
    assert_eq!(tables.len(), 8);
    let pairs = |list: &Value| -> Vec<(String, String)> {
        list.as_sequence()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["Name"].as_str().unwrap_or_default().into(),
                    c["Type"].as_str().unwrap_or_default().into(),
                )
            })
            .collect()
    };
    let partitions: Vec<(String, String)> = PARTITION_KEYS
        .iter()
        .map(|c| (c.name.into(), c.column_type.hive_name().into()))
        .collect();
    for dataset in DATASETS {
        for format in [Format::Raw, Format::Parquet] {
            let name = dataset.table_name(format);
            let table = tables
                .get(&name)
                .with_context(|| format!("no Glue table `{name}`"))?;
            let expected: Vec<(String, String)> = dataset
                .columns
                .iter()
                .map(|c| (c.name.into(), c.column_type.hive_name().into()))
                .collect();
            assert_eq!(
                pairs(&table["StorageDescriptor"]["Columns"]),
                expected,
                "{name}"
            );
            assert_eq!(pairs(&table["PartitionKeys"]), partitions, "{name}");
            assert_eq!(table["Parameters"]["projection.enabled"], "true", "{name}");
        }
    }
    Ok(())
}

/// Every `Allow` statement of every IAM role, as (role, statement).
fn allow_statements(template: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (id, role) in of_type(template, "AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                if statement["Effect"] == "Allow" {
                    found.push((id.clone(), statement.clone()));
                }
            }
        }
    }
    found
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn iam_grants_no_wildcard_action_and_wildcard_resources_only_where_aws_requires_them() -> Result<()>
{
    // Actions that AWS authorizes only on the resource "*".
    const NEED_STAR: [&str; 2] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];
    let template = parsed("us-west-2")?;
    let statements = allow_statements(&template);
    assert!(
        statements.len() > 20,
        "found only {} statements",
        statements.len()
    );
    for (role, statement) in statements {
        let actions = strings(&statement["Action"]);
        for action in &actions {
            ensure!(
                !action.ends_with(":*") && action != "*",
                "{role} allows `{action}`"
            );
        }
        if strings(&statement["Resource"]).iter().any(|r| r == "*") {
            ensure!(
                actions.iter().all(|a| NEED_STAR.contains(&a.as_str())),
                "{role} allows {actions:?} on `*`"
            );
        }
    }
    Ok(())
}

#[test]
fn every_store_is_encrypted_with_the_data_key_and_no_bucket_is_public() -> Result<()> {
    let template = parsed("us-west-2")?;
    let data_key = |v: &Value| format!("{v:?}").contains("DataKey");
    for (id, r) in of_type(&template, "AWS::DynamoDB::Table") {
        ensure!(
            data_key(&r["Properties"]["SSESpecification"]["KMSMasterKeyId"]),
            "{id} not on the data key"
        );
    }
    for (id, r) in of_type(&template, "AWS::Kinesis::Stream") {
        ensure!(
            data_key(&r["Properties"]["StreamEncryption"]["KeyId"]),
            "{id} not on the data key"
        );
    }
    for (id, r) in of_type(&template, "AWS::SQS::Queue")
        .into_iter()
        .chain(of_type(&template, "AWS::SNS::Topic"))
    {
        ensure!(
            data_key(&r["Properties"]["KmsMasterKeyId"]),
            "{id} not on the data key"
        );
    }
    for (id, r) in of_type(&template, "AWS::Logs::LogGroup") {
        ensure!(
            data_key(&r["Properties"]["KmsKeyId"]),
            "{id} not on the data key"
        );
        ensure!(
            !r["Properties"]["RetentionInDays"].is_null(),
            "{id} keeps logs forever"
        );
    }
    for (id, r) in of_type(&template, "AWS::S3::Bucket") {
        let props = &r["Properties"];
        ensure!(
            format!("{:?}", props["BucketEncryption"]).contains("DataKey"),
            "{id} not on the data key"
        );
        let block = &props["PublicAccessBlockConfiguration"];
        for flag in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            ensure!(block[flag] == true, "{id} lacks {flag}");
        }
    }
    let policies = of_type(&template, "AWS::S3::BucketPolicy");
    ensure!(
        format!("{policies:?}").contains("aws:SecureTransport"),
        "no TLS-only bucket policy"
    );
    Ok(())
}

#[test]
fn data_is_retained_on_stack_deletion_and_no_account_wide_setting_is_changed() -> Result<()> {
    let template = parsed("us-west-2")?;
    for id in ["DataBucket", "AggregatesTable", "DataKey"] {
        let resource = &template["Resources"][id];
        assert_eq!(resource["DeletionPolicy"], "Retain", "{id}");
        assert_eq!(resource["UpdateReplacePolicy"], "Retain", "{id}");
    }
    assert!(of_type(&template, "AWS::ApiGateway::Account").is_empty());
    assert!(of_type(&template, "AWS::Glue::DataCatalogEncryptionSettings").is_empty());
    Ok(())
}

#[test]
fn the_event_source_mapping_never_discards_a_record_that_could_still_be_processed() -> Result<()> {
    for region in regions::supported() {
        let template = parsed(region)?;
        let mappings = of_type(&template, "AWS::Lambda::EventSourceMapping");
        assert_eq!(mappings.len(), 1, "{region}");
        for (id, mapping) in mappings {
            let properties = &mapping["Properties"];
            // -1: a failed batch is retried until it succeeds, however long that takes.
            assert_eq!(properties["MaximumRetryAttempts"], -1, "{region} {id}");
            assert_eq!(properties["MaximumRecordAgeInSeconds"], -1, "{region} {id}");
            // Bisection or partial batch responses would only matter with a limit; an on-failure
            // destination gets sequence numbers, never the records.
            assert_ne!(
                properties["BisectBatchOnFunctionError"], true,
                "{region} {id}"
            );
            assert!(properties["DestinationConfig"].is_null(), "{region} {id}");
            assert!(
                properties["FunctionResponseTypes"].is_null(),
                "{region} {id}"
            );
        }
        // The stream keeps what is not processed yet for as long as the join state remembers it.
        let retention = &template["Parameters"]["StreamRetentionHours"];
        assert_eq!(
            (
                retention["Default"].as_i64(),
                retention["MaxValue"].as_i64()
            ),
            (Some(24), Some(168))
        );
        // A record that can never be processed is kept in the lake, where the processor may write.
        let processor = &template["Resources"]["ProcessorFunction"]["Properties"];
        assert_eq!(
            processor["Environment"]["Variables"]["BUCKET"],
            serde_yaml_ng::from_str::<Value>("!Ref DataBucket")?,
            "{region}"
        );
        let grants: Vec<String> = allow_statements(&template)
            .into_iter()
            .filter(|(role, _)| role == "ProcessorRole")
            .flat_map(|(_, statement)| strings(&statement["Resource"]))
            .collect();
        assert!(
            grants.iter().any(|r| r.contains("/dead-letter/*")),
            "{region}: {grants:?}"
        );
    }
    Ok(())
}

#[test]
fn the_contract_parameters_have_their_contract_defaults() -> Result<()> {
    let template = parsed("us-west-2")?;
    for (name, default) in [
        ("AggregationPeriod", 10),
        ("BidsSessionTimeout", 5),
        ("ClicksSessionTimeout", 5),
        ("BufInterval", 60),
        ("BufSize", 50),
    ] {
        assert_eq!(template["Parameters"][name]["Default"], default, "{name}");
    }
    Ok(())
}

#[test]
fn the_template_refuses_to_deploy_outside_the_region_it_was_rendered_for() -> Result<()> {
    for region in regions::supported() {
        let template = parsed(region)?;
        let assertion = format!("{:?}", template["Rules"]["RenderedRegion"]["Assertions"]);
        assert!(assertion.contains(region), "{region}: {assertion}");
    }
    Ok(())
}

/// A name or logical id that a function's environment or an IAM policy refers to.
#[derive(Debug)]
enum Reference {
    /// `!Ref X`, `!GetAtt X.Attr` or `${X}` inside a `!Sub`: X must be a resource or parameter.
    LogicalId(String),
    /// A `${AWS::StackName}…` name in a `!Sub` (alone, or as the resource part of an ARN): some
    /// resource must declare that name, or one it prefixes when it ends in `*`.
    StackName(String),
}

/// The references of a value: its intrinsic functions, and the ones in its sequences.
fn references(value: &Value) -> Vec<Reference> {
    match value {
        Value::Sequence(items) => items.iter().flat_map(references).collect(),
        Value::Tagged(tagged) => {
            let text = tagged.value.as_str().unwrap_or_default();
            if tagged.tag == "Ref" {
                vec![Reference::LogicalId(text.to_owned())]
            } else if tagged.tag == "GetAtt" {
                let id = text.split('.').next().unwrap_or_default();
                vec![Reference::LogicalId(id.to_owned())]
            } else if tagged.tag == "Sub" {
                sub_references(text)
            } else {
                vec![]
            }
        }
        _ => vec![],
    }
}

fn sub_references(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let variable = &rest[start + 2..];
        let end = variable.find('}').unwrap_or(variable.len());
        let name = variable[..end].trim();
        // `${!x}` is a literal, `${AWS::…}` a pseudo parameter.
        if !name.starts_with('!') && !name.starts_with("AWS::") {
            let id = name.split('.').next().unwrap_or_default();
            found.push(Reference::LogicalId(id.to_owned()));
        }
        rest = &variable[end..];
    }
    if let Some(at) = text.find("${AWS::StackName}") {
        if at == 0 || text.starts_with("arn:") {
            found.push(Reference::StackName(text[at..].to_owned()));
        }
    }
    found
}

/// Every physical name the template declares: the `…Name` properties of its resources.
fn declared_names(template: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for (_, resource) in resources(template) {
        for (key, value) in resource["Properties"].as_mapping().into_iter().flatten() {
            if !key.as_str().unwrap_or_default().ends_with("Name") {
                continue;
            }
            match value {
                Value::String(name) => names.push(name.clone()),
                Value::Tagged(tagged) if tagged.tag == "Sub" => {
                    names.extend(tagged.value.as_str().map(str::to_owned));
                }
                _ => {}
            }
        }
    }
    names
}

#[test]
fn every_name_a_function_environment_or_an_iam_policy_uses_is_one_the_template_creates(
) -> Result<()> {
    for region in regions::supported() {
        let template = parsed(region)?;
        let ids: Vec<String> = resources(&template)
            .into_iter()
            .map(|(id, _)| id)
            .chain(
                template["Parameters"]
                    .as_mapping()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, _)| k.as_str().map(str::to_owned)),
            )
            .collect();
        let names = declared_names(&template);
        let mut uses: Vec<(String, Reference)> = Vec::new();
        for (id, function) in of_type(&template, "AWS::Lambda::Function") {
            for (variable, value) in function["Properties"]["Environment"]["Variables"]
                .as_mapping()
                .into_iter()
                .flatten()
            {
                let at = format!("{id} {}", variable.as_str().unwrap_or_default());
                uses.extend(references(value).into_iter().map(|r| (at.clone(), r)));
            }
        }
        for (role, statement) in allow_statements(&template) {
            let at = format!("{role} {}", statement["Sid"].as_str().unwrap_or_default());
            uses.extend(
                references(&statement["Resource"])
                    .into_iter()
                    .map(|r| (at.clone(), r)),
            );
        }
        let by_name = uses
            .iter()
            .filter(|(_, r)| matches!(r, Reference::StackName(_)))
            .count();
        ensure!(
            uses.len() > 40 && by_name >= 6,
            "{region}: only {} references, {by_name} by name: the walk found too little",
            uses.len()
        );
        for (at, reference) in uses {
            match reference {
                Reference::LogicalId(id) => ensure!(
                    ids.contains(&id),
                    "{region}: {at} refers to `{id}`, which the template does not declare"
                ),
                Reference::StackName(name) => {
                    let found = match name.strip_suffix('*') {
                        Some(prefix) => names.iter().any(|n| n.starts_with(prefix)),
                        None => names.contains(&name),
                    };
                    ensure!(
                        found,
                        "{region}: {at} names `{name}`, which no resource of the template creates"
                    );
                }
            }
        }
    }
    Ok(())
}

fn tempdir(name: &str) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sdp-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
