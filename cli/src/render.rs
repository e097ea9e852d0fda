//! Pure rendering: template sources + region configuration → CloudFormation text.
//!
//! Handlebars runs in strict mode (a missing key is an error, never an empty string) with HTML
//! escaping off (the output is YAML). The result is parsed back as YAML and checked to be a
//! CloudFormation document, so a template bug fails here rather than in CloudFormation.

use std::collections::BTreeMap;

use handlebars::Handlebars;
use serde::Serialize;
use serde_yaml_ng::Value;

use sdp_core::events::{EventType, BATCH_ROUTE};
use sdp_core::lake::{Column, DATASETS, FIRST_DATE, PARTITION_KEYS};

use crate::regions::RegionConfig;
use crate::templates::TemplateSet;

/// The API Gateway stage of every API. A literal, so that URLs never reference the Stage resource
/// (moto does not create stages, and a literal keeps outputs valid on both).
pub const STAGE: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{name}` does not compile")]
    Syntax {
        name: String,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("rendering the templates failed")]
    Render(#[source] Box<handlebars::RenderError>),
    #[error("the rendered template is not valid YAML")]
    Yaml(#[source] serde_yaml_ng::Error),
    #[error("the rendered template lacks the top-level `{0}` section")]
    MissingSection(&'static str),
}

/// What the templates see.
#[derive(Debug, Serialize)]
struct Context<'a> {
    region: &'a RegionConfig,
    stage: &'static str,
    routes: Vec<Route>,
    datasets: Vec<DatasetView>,
    partition_keys: &'static [Column],
    /// The first date of the lake's partition projection.
    first_date: &'static str,
    apis: &'static [Api],
    functions: &'static [&'static str],
    scheduled: &'static [&'static str],
    auth_modes: &'static [AuthMode],
    /// Per API id, a hash of its definition: it names the API's Deployment resources.
    api_revisions: BTreeMap<&'static str, String>,
}

/// A value of the `ApiAuth` parameter: the suffix of its Deployment's logical id, and the
/// condition that selects it.
#[derive(Debug, Serialize)]
struct AuthMode {
    suffix: &'static str,
    condition: &'static str,
}

const AUTH_MODES: &[AuthMode] = &[
    AuthMode {
        suffix: "ApiKey",
        condition: "UseApiKeys",
    },
    AuthMode {
        suffix: "Iam",
        condition: "UseIamAuth",
    },
    AuthMode {
        suffix: "Open",
        condition: "UseNoAuth",
    },
];

/// A REST API of the platform: `id` prefixes its logical ids, `name` ends its API name.
#[derive(Debug, Serialize)]
struct Api {
    id: &'static str,
    name: &'static str,
}

const APIS: &[Api] = &[
    Api {
        id: "Ingest",
        name: "ingest",
    },
    Api {
        id: "Reports",
        name: "reports",
    },
    Api {
        id: "Predict",
        name: "predictions",
    },
];

/// The logical-id prefixes of the functions (each has a `<Prefix>CodeKey` parameter), and of
/// those run on a schedule.
pub const FUNCTIONS: &[&str] = &[
    "Ingest",
    "Processor",
    "Reports",
    "Compactor",
    "Trainer",
    "Predict",
];
const SCHEDULED: &[&str] = &["Compactor", "Trainer"];

/// An ingestion route: `POST /{path}` stamps `type: {tag}`; `id` prefixes its logical ids.
#[derive(Debug, Serialize)]
struct Route {
    path: &'static str,
    id: String,
}

#[derive(Debug, Serialize)]
struct DatasetView {
    name: &'static str,
    id: String,
    /// `IMPRESSIONS`: for environment variable names.
    upper: String,
    description: &'static str,
    columns: &'static [Column],
    /// Raw events are landed straight from the stream; the others come from the processor.
    from_stream: bool,
    /// The name of its Firehose delivery stream after `${AWS::StackName}-`. A field of its own,
    /// not `raw-{{name}}` in each template: inside a partial block (`{{#> function name=…}}`)
    /// `{{name}}` resolves to the block's parameter, which once named every processor stream
    /// `<stack>-raw-processor`.
    delivery_stream: String,
}

/// `impression` → `Impression`: logical ids are derived from contract names, not typed twice.
pub fn pascal(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// A rendered template: the exact text a deploy sends, and the document it parses to, so that the
/// commands reading it (parameters, permissions, retained resources) never parse it again.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub text: String,
    pub document: Value,
}

/// Renders the whole platform for one region.
pub fn render_platform(
    templates: &TemplateSet,
    region: &RegionConfig,
) -> Result<Rendered, RenderError> {
    let mut context = Context {
        region,
        stage: STAGE,
        routes: EventType::ALL
            .iter()
            .map(|t| t.route())
            .chain([BATCH_ROUTE])
            .map(|path| Route {
                path,
                id: pascal(path),
            })
            .collect(),
        datasets: DATASETS
            .iter()
            .map(|d| DatasetView {
                name: d.name,
                id: pascal(d.name),
                upper: d.name.to_ascii_uppercase(),
                description: d.description,
                columns: d.columns,
                from_stream: d.name == "bcns",
                delivery_stream: format!("raw-{}", d.name),
            })
            .collect(),
        partition_keys: &PARTITION_KEYS,
        first_date: FIRST_DATE,
        apis: APIS,
        functions: FUNCTIONS,
        scheduled: SCHEDULED,
        auth_modes: AUTH_MODES,
        api_revisions: APIS.iter().map(|api| (api.id, String::new())).collect(),
    };
    // Two passes: the first gives each API's definition, whose hash names its Deployments in
    // the second (which is otherwise the same text).
    let draft = check_cloudformation(&render(templates, &context)?)?;
    context.api_revisions = APIS
        .iter()
        .map(|api| (api.id, api_revision(&draft, api.id)))
        .collect();
    let text = render(templates, &context)?;
    let document = check_cloudformation(&text)?;
    Ok(Rendered { text, document })
}

/// A short hash of what API Gateway snapshots in a deployment of API `id`: the RestApi and every
/// API Gateway resource that names it (resources, methods, their integrations), by logical id.
/// Deployments and stages are left out: they follow from the rest.
fn api_revision(document: &Value, id: &str) -> String {
    let api = format!("{id}Api");
    let names_the_api = |logical_id: &str, resource: &Value| {
        let kind = resource["Type"].as_str().unwrap_or_default();
        let rest_api_id = &resource["Properties"]["RestApiId"];
        kind.starts_with("AWS::ApiGateway::")
            && !matches!(
                kind,
                "AWS::ApiGateway::Deployment" | "AWS::ApiGateway::Stage"
            )
            && (logical_id == api
                || matches!(rest_api_id, Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some(api.as_str())))
    };
    let definition: BTreeMap<&str, &Value> = document["Resources"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(key, resource)| Some((key.as_str()?, resource)))
        .filter(|(key, resource)| names_the_api(key, resource))
        .collect();
    let text = serde_yaml_ng::to_string(&definition).unwrap_or_default();
    crate::package::sha256_hex(text.as_bytes())[..10].to_owned()
}

fn render(templates: &TemplateSet, context: &impl Serialize) -> Result<String, RenderError> {
    let mut engine = Handlebars::new();
    engine.set_strict_mode(true);
    engine.register_escape_fn(handlebars::no_escape);
    for (name, source) in &templates.partials {
        engine
            .register_partial(name, source)
            .map_err(|e| RenderError::Syntax {
                name: format!("partials/{name}.yaml.hbs"),
                source: Box::new(e),
            })?;
    }
    engine
        .register_template_string("sdp", templates.root)
        .map_err(|e| RenderError::Syntax {
            name: "sdp.yaml.hbs".into(),
            source: Box::new(e),
        })?;
    engine
        .render("sdp", context)
        .map_err(|e| RenderError::Render(Box::new(e)))
}

fn check_cloudformation(text: &str) -> Result<Value, RenderError> {
    let document: Value = serde_yaml_ng::from_str(text).map_err(RenderError::Yaml)?;
    for section in [
        "AWSTemplateFormatVersion",
        "Parameters",
        "Resources",
        "Outputs",
    ] {
        if document.get(section).is_none() {
            return Err(RenderError::MissingSection(section));
        }
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions;

    fn set(root: &'static str) -> TemplateSet {
        TemplateSet {
            root,
            partials: vec![],
        }
    }

    fn us_west_2() -> RegionConfig {
        regions::load("us-west-2").unwrap()
    }

    #[test]
    fn a_missing_key_is_an_error_not_an_empty_string() {
        let templates = set("AWSTemplateFormatVersion: x\nParameters: {}\nResources: {}\nOutputs: {}\nX: {{region.nope}}\n");
        let err = render_platform(&templates, &us_west_2()).unwrap_err();
        assert!(matches!(err, RenderError::Render(_)), "{err}");
    }

    #[test]
    fn text_is_not_html_escaped() {
        let templates = set("AWSTemplateFormatVersion: x\nParameters: {}\nResources: {}\nOutputs: {}\nX: \"{{region.display_name}} & <{{region.region}}>\"\n");
        let text = render_platform(&templates, &us_west_2()).unwrap().text;
        assert_eq!(
            text.lines().last(),
            Some("X: \"US West (Oregon) & <us-west-2>\"")
        );
    }

    #[test]
    fn output_that_is_not_yaml_is_refused() {
        let templates = set("Resources: [unclosed\n");
        let err = render_platform(&templates, &us_west_2()).unwrap_err();
        assert!(matches!(err, RenderError::Yaml(_)), "{err}");
    }

    #[test]
    fn a_document_without_resources_is_refused() {
        let templates = set("AWSTemplateFormatVersion: x\nParameters: {}\nOutputs: {}\n");
        let err = render_platform(&templates, &us_west_2()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the rendered template lacks the top-level `Resources` section"
        );
    }

    /// The logical ids of the `AWS::ApiGateway::Deployment` resources, sorted.
    fn deployment_ids(rendered: &Rendered) -> Vec<String> {
        let document = &rendered.document;
        let mut ids: Vec<String> = document["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::ApiGateway::Deployment"))
            .map(|(k, _)| k.as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_changed_api_gets_new_deployments_and_the_others_keep_theirs() {
        let templates = crate::templates::embedded();
        let before = deployment_ids(&render_platform(&templates, &us_west_2()).unwrap());
        assert_eq!(
            before.len(),
            9,
            "three APIs, one deployment per auth mode: {before:?}"
        );
        let mut changed = templates.clone();
        for (name, source) in &mut changed.partials {
            if *name == "ingest" {
                let edited = source.replace("PathPart: {{path}}", "PathPart: v2-{{path}}");
                assert_ne!(&edited, source);
                *source = Box::leak(edited.into_boxed_str());
            }
        }
        let after = deployment_ids(&render_platform(&changed, &us_west_2()).unwrap());
        let moved: Vec<_> = after.iter().filter(|id| !before.contains(id)).collect();
        assert_eq!(moved.len(), 3, "{moved:?}");
        assert!(
            moved.iter().all(|id| id.starts_with("IngestDeployment")),
            "{moved:?}"
        );
        assert_eq!(
            deployment_ids(&render_platform(&templates, &us_west_2()).unwrap()),
            before,
            "the same sources give the same ids"
        );
    }

    #[test]
    fn logical_ids_are_pascal_case_of_contract_names() {
        assert_eq!(pascal("impression"), "Impression");
        assert_eq!(pascal(""), "");
    }
}
