//! What CloudFormation's answers mean, as pure functions: a change set's resource
//! changes and whether it is a no-op, and whether a stack status ends an operation.

use aws_sdk_cloudformation::types::{ChangeAction, Replacement, ResourceAttribute, StackStatus};

use crate::cfn::stack::in_progress;

/// One resource change of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    pub action: ChangeAction,
    pub logical_id: String,
    pub resource_type: String,
    /// For modifications: whether the resource is (or may be) replaced.
    pub replacement: Option<Replacement>,
    /// Which parts of the resource change (properties, tags, ...).
    pub scope: Vec<ResourceAttribute>,
}

impl ResourceChange {
    pub fn replaced(&self) -> bool {
        matches!(
            self.replacement,
            Some(Replacement::True | Replacement::Conditional)
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSummary {
    pub adds: usize,
    pub modifies: usize,
    pub removes: usize,
    /// Logical ids of resources that will (or may) be replaced.
    pub replacements: Vec<String>,
}

pub fn summarize(changes: &[ResourceChange]) -> ChangeSummary {
    let count = |action: ChangeAction| changes.iter().filter(|c| c.action == action).count();
    ChangeSummary {
        adds: count(ChangeAction::Add),
        modifies: count(ChangeAction::Modify),
        removes: count(ChangeAction::Remove),
        replacements: changes
            .iter()
            .filter(|c| c.replaced())
            .map(|c| c.logical_id.clone())
            .collect(),
    }
}

/// A FAILED change set's reason that means "nothing to change". CloudFormation says it
/// two ways: "didn't contain changes", and, for a template with a `Transform`, "No updates
/// are to be performed." (issue 19, item 13). A change set that computed (CREATE_COMPLETE), even without resource
/// changes, changes something (outputs, parameters no resource uses) and is executed.
pub fn means_no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// Every change is a modification of tags alone: what a new stack tag (the deploying
/// commit) causes when nothing else changed.
pub fn only_tags(changes: &[ResourceChange]) -> bool {
    !changes.is_empty()
        && changes
            .iter()
            .all(|c| c.action == ChangeAction::Modify && c.scope == [ResourceAttribute::Tags])
}

/// The changes that make the stack serve something new: added or modified resources
/// (removals happen in CloudFormation's cleanup, after the new version serves).
pub fn serving_changes(changes: &[ResourceChange]) -> impl Iterator<Item = &ResourceChange> {
    changes
        .iter()
        .filter(|c| matches!(c.action, ChangeAction::Add | ChangeAction::Modify))
}

/// How a stack operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Succeeded(StackStatus),
    /// Ended in a failure or rollback state.
    Failed(StackStatus),
    /// The stack is gone (after a delete).
    Gone,
    /// The wait timed out; the operation goes on in CloudFormation.
    TimedOut(StackStatus),
    /// Still running, but what the waiter waited for has happened.
    Running(StackStatus),
}

/// The end of an operation, or None while it runs.
pub fn settled(status: &StackStatus) -> Option<Settled> {
    match status {
        StackStatus::CreateComplete | StackStatus::UpdateComplete | StackStatus::ImportComplete => {
            Some(Settled::Succeeded(status.clone()))
        }
        StackStatus::DeleteComplete => Some(Settled::Gone),
        s if in_progress(s) => None,
        _ => Some(Settled::Failed(status.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: ChangeAction, id: &str, replacement: Option<Replacement>) -> ResourceChange {
        ResourceChange {
            action,
            logical_id: id.into(),
            resource_type: "AWS::X::Y".into(),
            replacement,
            scope: vec![ResourceAttribute::Properties],
        }
    }

    #[test]
    fn change_summary_counts_actions_and_flags_replacements() {
        let summary = summarize(&[
            change(ChangeAction::Add, "A", None),
            change(ChangeAction::Modify, "B", Some(Replacement::False)),
            change(ChangeAction::Modify, "C", Some(Replacement::True)),
            change(ChangeAction::Modify, "D", Some(Replacement::Conditional)),
            change(ChangeAction::Remove, "E", None),
        ]);
        assert_eq!(
            summary,
            ChangeSummary {
                adds: 1,
                modifies: 3,
                removes: 1,
                replacements: vec!["C".into(), "D".into()]
            }
        );
    }

    #[test]
    fn a_failed_reason_that_says_so_in_either_wording_means_no_changes() {
        assert!(means_no_changes(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        // The wording CloudFormation uses when the template has a Transform.
        assert!(means_no_changes("No updates are to be performed."));
        assert!(!means_no_changes(
            "Template format error: Unresolved resource dependencies [Foo]"
        ));
    }

    #[test]
    fn a_change_of_tags_alone_is_told_from_a_real_change() {
        let tags = |id: &str| ResourceChange {
            scope: vec![ResourceAttribute::Tags],
            ..change(ChangeAction::Modify, id, Some(Replacement::False))
        };
        assert!(only_tags(&[tags("Function"), tags("Role")]));
        assert!(!only_tags(&[]));
        assert!(!only_tags(&[
            tags("Function"),
            change(ChangeAction::Modify, "Role", Some(Replacement::False))
        ]));
        let both = ResourceChange {
            scope: vec![ResourceAttribute::Tags, ResourceAttribute::Properties],
            ..tags("Function")
        };
        assert!(!only_tags(&[both]));
        // A modification that does not say what it touches is a real change.
        let unscoped = ResourceChange {
            scope: vec![],
            ..tags("Function")
        };
        assert!(!only_tags(&[unscoped]));
    }

    #[test]
    fn terminal_statuses_are_classified() {
        assert_eq!(
            settled(&StackStatus::CreateComplete),
            Some(Settled::Succeeded(StackStatus::CreateComplete))
        );
        assert_eq!(
            settled(&StackStatus::UpdateRollbackComplete),
            Some(Settled::Failed(StackStatus::UpdateRollbackComplete))
        );
        assert_eq!(
            settled(&StackStatus::RollbackComplete),
            Some(Settled::Failed(StackStatus::RollbackComplete))
        );
        assert_eq!(settled(&StackStatus::DeleteComplete), Some(Settled::Gone));
        assert_eq!(settled(&StackStatus::UpdateCompleteCleanupInProgress), None);
        assert_eq!(settled(&StackStatus::UpdateRollbackInProgress), None);
    }
}
