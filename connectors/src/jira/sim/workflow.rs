//! Jira workflows: statuses with their categories, the transitions between them
//! (ids differ per project), and the standard workflow the simulator's projects use.

/// A status of a workflow and its category (`new`, `indeterminate`, `done`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowStatus {
    pub id: String,
    pub name: String,
    pub category: String,
}

/// A transition. `from` lists the status names it is available from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowTransition {
    pub id: u32,
    pub name: String,
    pub from: Vec<String>,
    pub to: String,
    /// Fields on the transition screen (`resolution` is the one that matters).
    pub screen: Vec<String>,
}

/// A project's workflow. The first status is where new issues start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub statuses: Vec<WorkflowStatus>,
    pub transitions: Vec<WorkflowTransition>,
}

impl Default for Workflow {
    fn default() -> Self {
        Workflow::standard()
    }
}

impl Workflow {
    /// "To Do" (new) → "In Progress" (indeterminate) → "Done" (done): Start Progress
    /// (11), Done from To Do (21) and from In Progress (31), both with `resolution`
    /// on the screen, Stop Progress (41), Reopen (51).
    pub fn standard() -> Workflow {
        let status = |id: &str, name: &str, category: &str| WorkflowStatus {
            id: id.into(),
            name: name.into(),
            category: category.into(),
        };
        let transition =
            |id, name: &str, from: &str, to: &str, screen: &[&str]| WorkflowTransition {
                id,
                name: name.into(),
                from: vec![from.into()],
                to: to.into(),
                screen: screen.iter().map(|s| s.to_string()).collect(),
            };
        Workflow {
            statuses: vec![
                status("10000", "To Do", "new"),
                status("3", "In Progress", "indeterminate"),
                status("10001", "Done", "done"),
            ],
            transitions: vec![
                transition(11, "Start Progress", "To Do", "In Progress", &[]),
                transition(21, "Done", "To Do", "Done", &["resolution"]),
                transition(31, "Done", "In Progress", "Done", &["resolution"]),
                transition(41, "Stop Progress", "In Progress", "To Do", &[]),
                transition(51, "Reopen", "Done", "To Do", &[]),
            ],
        }
    }

    /// The standard workflow whose Reopen screen also shows `resolution` (so a
    /// client may, and should, clear it there).
    pub fn with_reopen_screen() -> Workflow {
        let mut w = Workflow::standard();
        for t in &mut w.transitions {
            if t.name == "Reopen" {
                t.screen.push("resolution".into());
            }
        }
        w
    }

    pub(super) fn status(&self, name: &str) -> Option<&WorkflowStatus> {
        self.statuses
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    pub(super) fn available<'a>(
        &'a self,
        from: &'a str,
    ) -> impl Iterator<Item = &'a WorkflowTransition> {
        self.transitions
            .iter()
            .filter(move |t| t.from.iter().any(|f| f.eq_ignore_ascii_case(from)))
    }
}
