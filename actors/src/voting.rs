//! Deciding between members' answers (`docs/invariants.md#vote-majority`): the answer most
//! members gave wins and the members that answered otherwise are the
//! minority, to be degraded. Used for votes in two-phase commit (by the
//! controller) and for voted reads in coop mode (by sessions).
//!
//! A tie is never broken by luck: under [`Rule::StrictMajority`] there must
//! be more agreeing members than all others together, otherwise there is
//! no winner and the caller fails safe. Under [`Rule::Plurality`] a tie
//! between an answer the caller prefers (an accepted vote) and others is
//! resolved for the preferred one, so that in single mode a member that
//! refuses what an equal number of members accept is the one degraded
//! (one member that errs while the others succeed is the one at fault); a tie
//! between two preferred answers still has no winner.

/// How a winner is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The largest group wins; a tie only for a single preferred group.
    Plurality,
    /// The winning group must be larger than all the others together.
    StrictMajority,
}

/// What the answers decide.
#[derive(Debug, PartialEq)]
pub enum Verdict<K, T> {
    Winner {
        /// The winning answer (the first one given of its group).
        answer: T,
        /// The members that gave it (or an answer the same as it).
        agreeing: Vec<(K, T)>,
        /// Everyone else, with what they answered.
        outvoted: Vec<(K, T)>,
    },
    /// No answer won; every answer, grouped, largest group first.
    NoWinner(Vec<Vec<(K, T)>>),
}

/// Groups `answers` by `same` and applies `rule`. `preferred` marks the
/// answers a plurality tie is resolved for. An empty input has no winner.
pub fn decide<K, T: Clone>(
    answers: Vec<(K, T)>,
    same: impl Fn(&T, &T) -> bool,
    rule: Rule,
    preferred: impl Fn(&T) -> bool,
) -> Verdict<K, T> {
    let total = answers.len();
    let mut groups: Vec<Vec<(K, T)>> = Vec::new();
    for (key, answer) in answers {
        match groups.iter_mut().find(|g| same(&g[0].1, &answer)) {
            Some(group) => group.push((key, answer)),
            None => groups.push(vec![(key, answer)]),
        }
    }
    // Stable: among groups of equal size, the first answered stays first.
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let Some(top) = groups.first().map(Vec::len) else {
        return Verdict::NoWinner(groups);
    };
    let tied: Vec<usize> = (0..groups.len()).filter(|&i| groups[i].len() == top).collect();
    let winner = match rule {
        Rule::StrictMajority => (top * 2 > total).then_some(0),
        Rule::Plurality if tied.len() == 1 => Some(0),
        Rule::Plurality => {
            let mut preferred_tied = tied.iter().filter(|&&i| preferred(&groups[i][0].1));
            match (preferred_tied.next(), preferred_tied.next()) {
                (Some(&only), None) => Some(only),
                _ => None,
            }
        }
    };
    let Some(winner) = winner else {
        return Verdict::NoWinner(groups);
    };
    let agreeing = groups.remove(winner);
    let outvoted = groups.into_iter().flatten().collect();
    Verdict::Winner {
        answer: agreeing[0].1.clone(),
        agreeing,
        outvoted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(answers: &[(u8, &'static str)], rule: Rule) -> Verdict<u8, &'static str> {
        decide(answers.to_vec(), |a, b| a == b, rule, |a| a.starts_with("ok"))
    }

    fn winner(v: &Verdict<u8, &'static str>) -> Option<(&'static str, Vec<u8>, Vec<u8>)> {
        match v {
            Verdict::Winner {
                answer,
                agreeing,
                outvoted,
            } => Some((
                *answer,
                agreeing.iter().map(|a| a.0).collect(),
                outvoted.iter().map(|a| a.0).collect(),
            )),
            Verdict::NoWinner(_) => None,
        }
    }

    #[test]
    fn unanimous_answers_win_under_both_rules() {
        for rule in [Rule::Plurality, Rule::StrictMajority] {
            let v = run(&[(1, "ok"), (2, "ok"), (3, "ok")], rule);
            assert_eq!(winner(&v), Some(("ok", vec![1, 2, 3], vec![])));
        }
    }

    #[test]
    fn the_minority_is_outvoted() {
        for rule in [Rule::Plurality, Rule::StrictMajority] {
            let v = run(&[(1, "ok"), (2, "err"), (3, "ok")], rule);
            assert_eq!(winner(&v), Some(("ok", vec![1, 3], vec![2])));
            // An error the majority gives wins over the one that accepted.
            let v = run(&[(1, "ok"), (2, "err"), (3, "err")], rule);
            assert_eq!(winner(&v), Some(("err", vec![2, 3], vec![1])));
        }
    }

    #[test]
    fn a_tie_has_no_winner_under_strict_majority() {
        let v = run(&[(1, "ok"), (2, "err")], Rule::StrictMajority);
        assert_eq!(winner(&v), None);
        let v = run(&[(1, "ok-a"), (2, "ok-b"), (3, "err")], Rule::StrictMajority);
        assert_eq!(winner(&v), None, "three different answers");
        // A plurality that is not a majority does not win either.
        let v = run(&[(1, "a"), (2, "a"), (3, "b"), (4, "c")], Rule::StrictMajority);
        assert_eq!(winner(&v), None);
    }

    #[test]
    fn plurality_resolves_a_tie_for_the_single_preferred_answer() {
        let v = run(&[(1, "err"), (2, "ok")], Rule::Plurality);
        assert_eq!(winner(&v), Some(("ok", vec![2], vec![1])));
        let v = run(&[(1, "ok-a"), (2, "ok-b")], Rule::Plurality);
        assert_eq!(winner(&v), None, "two different acceptances");
        let v = run(&[(1, "err-a"), (2, "err-b")], Rule::Plurality);
        assert_eq!(winner(&v), None, "two different refusals");
        let v = run(&[(1, "a"), (2, "a"), (3, "b"), (4, "c")], Rule::Plurality);
        assert_eq!(winner(&v), Some(("a", vec![1, 2], vec![3, 4])));
    }

    #[test]
    fn no_answers_no_winner() {
        assert_eq!(winner(&run(&[], Rule::Plurality)), None);
        assert_eq!(winner(&run(&[], Rule::StrictMajority)), None);
    }

    #[test]
    fn same_decides_what_counts_as_equal() {
        let v = decide(
            vec![(1, (1, 'x')), (2, (1, 'y')), (3, (2, 'z'))],
            |a, b| a.0 == b.0,
            Rule::StrictMajority,
            |_| false,
        );
        match v {
            Verdict::Winner {
                answer,
                agreeing,
                outvoted,
            } => {
                assert_eq!(answer, (1, 'x'));
                assert_eq!(agreeing.len(), 2);
                assert_eq!(outvoted, vec![(3, (2, 'z'))]);
            }
            other => panic!("{other:?}"),
        }
    }
}
