//! The stack's parameters as the rendered template declares them (`Parameters`: default, bounds,
//! allowed values): the one table `sdp deploy --param` and `sdp local --param` are resolved
//! against, so a default or a bound is written once, in `templates/partials/parameters.yaml.hbs`.

use anyhow::{anyhow, bail};
use serde_yaml_ng::Value;

/// One declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub name: String,
    pub default: Option<String>,
    pub number: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub allowed: Vec<String>,
}

/// The parameters a user may set (the code keys and the artifact bucket are the deploy's own).
#[derive(Debug, Clone, PartialEq)]
pub struct StackParameters {
    declared: Vec<Declared>,
}

/// A scalar of the template as the text CloudFormation would pass.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl StackParameters {
    /// The settable parameters of a rendered template, in declaration order.
    pub fn of(template: &Value) -> StackParameters {
        let declared = template["Parameters"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(name, spec)| {
                let name = name.as_str()?.to_owned();
                if name == "ArtifactBucket" || name.ends_with("CodeKey") {
                    return None;
                }
                Some(Declared {
                    default: text(&spec["Default"]),
                    number: spec["Type"] == "Number",
                    min: spec["MinValue"].as_f64(),
                    max: spec["MaxValue"].as_f64(),
                    allowed: spec["AllowedValues"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .filter_map(text)
                        .collect(),
                    name,
                })
            })
            .collect();
        StackParameters { declared }
    }

    pub fn get(&self, name: &str) -> Option<&Declared> {
        self.declared.iter().find(|d| d.name == name)
    }

    /// `KEY=VALUE` pairs, each of a parameter in `scope` (None: any settable one) and within its
    /// declared bounds: what CloudFormation would refuse is refused here, before anything runs,
    /// naming the parameter and the rule.
    pub fn resolve(
        &self,
        raw: &[String],
        scope: Option<&[&str]>,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let in_scope = |name: &str| scope.is_none_or(|names| names.contains(&name));
        raw.iter()
            .map(|pair| {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow!("`--param {pair}` is not KEY=VALUE"))?;
                let Some(declared) = self.get(key).filter(|d| in_scope(&d.name)) else {
                    let names: Vec<&str> = self
                        .declared
                        .iter()
                        .map(|d| d.name.as_str())
                        .filter(|n| in_scope(n))
                        .collect();
                    let whose = if scope.is_some() {
                        "sdp local"
                    } else {
                        "the stack"
                    };
                    bail!(
                        "`{key}` is not a parameter of {whose}; parameters: {}",
                        names.join(", ")
                    );
                };
                declared.check(value)?;
                Ok((key.to_owned(), value.to_owned()))
            })
            .collect()
    }

    /// The value of `name` with `overrides` (from [`StackParameters::resolve`]) over the default.
    pub fn value<'a>(&'a self, overrides: &'a [(String, String)], name: &str) -> Option<&'a str> {
        overrides
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| self.get(name)?.default.as_deref())
    }
}

impl Declared {
    fn check(&self, value: &str) -> anyhow::Result<()> {
        let name = &self.name;
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == value) {
            bail!(
                "--param {name}: `{value}` is not one of {}",
                self.allowed.join(", ")
            );
        }
        if self.number {
            let number: f64 = value
                .parse()
                .map_err(|_| anyhow!("--param {name}: `{value}` is not a number"))?;
            if self.min.is_some_and(|min| number < min) || self.max.is_some_and(|max| number > max)
            {
                bail!(
                    "--param {name}: {value} is outside {}..={}",
                    self.min.map_or("-inf".into(), |m| m.to_string()),
                    self.max.map_or("inf".into(), |m| m.to_string())
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parameters() -> StackParameters {
        let template = crate::render::render_platform(
            &crate::templates::embedded(),
            &crate::regions::load("us-west-2").unwrap(),
        )
        .unwrap();
        StackParameters::of(&template.document)
    }

    #[test]
    fn defaults_and_bounds_come_from_the_template() {
        let parameters = parameters();
        assert_eq!(parameters.value(&[], "AggregationPeriod"), Some("10"));
        assert_eq!(parameters.value(&[], "ClicksSessionTimeout"), Some("5"));
        assert!(
            parameters.get("IngestCodeKey").is_none(),
            "deploy fills code keys"
        );
        let set = parameters
            .resolve(&["AggregationPeriod=3".into()], None)
            .unwrap();
        assert_eq!(parameters.value(&set, "AggregationPeriod"), Some("3"));
        for (raw, problem) in [
            ("AggregationPeriod=0", "outside 1..=1440"),
            ("BidsSessionTimeout=-1", "outside 0..=1440"),
            ("AggregationPeriod=x", "not a number"),
            ("ApiAuth=OPEN", "not one of"),
        ] {
            let err = parameters
                .resolve(&[raw.into()], None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(problem), "{raw}: {err}");
        }
    }

    #[test]
    fn a_scope_limits_the_keys_and_names_its_owner() {
        let scope: &[&str] = &["AggregationPeriod"];
        let err = parameters()
            .resolve(&["BufSize=5".into()], Some(scope))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "`BufSize` is not a parameter of sdp local; parameters: AggregationPeriod"
        );
    }
}
