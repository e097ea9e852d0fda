//! Failures and their exit codes (CONTRACT.md §1): 1 the operation ran and failed, 2 it could not
//! run (bad arguments, unsupported region, no credentials, render error), 3 it timed out while
//! CloudFormation goes on, 130 the user pressed Ctrl-C and sdp stopped following an operation
//! that goes on (the shell's convention for SIGINT).

/// Exit code for "could not run". Also what clap uses for usage errors.
pub const USAGE: u8 = 2;

/// Why a command did not succeed; the variant decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The operation ran and failed (exit 1).
    Failed(anyhow::Error),
    /// The operation could not run (exit 2).
    CouldNotRun(anyhow::Error),
    /// Waiting timed out while the operation goes on (exit 3).
    TimedOut(anyhow::Error),
    /// The user interrupted the wait; the operation goes on (exit 130).
    Detached(anyhow::Error),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Failed(_) => 1,
            Failure::CouldNotRun(_) => USAGE,
            Failure::TimedOut(_) => 3,
            Failure::Detached(_) => 130,
        }
    }

    /// The error with its chain of causes, on one line: `outer: cause: root cause`.
    pub fn describe(&self) -> String {
        let (Failure::Failed(err)
        | Failure::CouldNotRun(err)
        | Failure::TimedOut(err)
        | Failure::Detached(err)) = self;
        format!("{err:#}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_kind_has_the_contract_exit_code() {
        assert_eq!(Failure::Failed(anyhow::anyhow!("x")).code(), 1);
        assert_eq!(Failure::CouldNotRun(anyhow::anyhow!("x")).code(), 2);
        assert_eq!(Failure::TimedOut(anyhow::anyhow!("x")).code(), 3);
        assert_eq!(Failure::Detached(anyhow::anyhow!("x")).code(), 130);
    }

    #[test]
    fn describe_includes_the_causes() {
        let err = anyhow::anyhow!("root").context("outer");
        assert_eq!(Failure::Failed(err).describe(), "outer: root");
    }
}
