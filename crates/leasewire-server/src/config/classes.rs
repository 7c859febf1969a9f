//! Client classes (`[[client-class]]`): named groups of clients, by what their packets say (option 60 vendor
//! class, option 77 user class, option 82 circuit-id / remote-id, a MAC prefix, the relay's giaddr). A pool
//! may be only for some classes (`allow`) or closed to some (`deny`), and a class adds or overrides options.
//!
//! Matching is compiled once, at load: every condition is a byte pattern (or a prefix) compared with option
//! data borrowed from the received message, and a packet's classes are evaluated once into a [`ClassSet`], a
//! fixed 256-bit set. Nothing on the DHCP path allocates for it.

use super::OptionSet;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// The most classes a configuration may declare (the width of [`ClassSet`]).
pub const MAX_CLASSES: usize = 256;

/// A set of classes, by their index in the configuration: what a packet matched, or what a pool names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClassSet([u64; 4]);

impl ClassSet {
    /// No class.
    pub const EMPTY: Self = Self([0; 4]);

    /// Add class `i` (below [`MAX_CLASSES`]).
    pub fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Whether class `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        i < MAX_CLASSES && self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether the two sets share a class.
    pub fn intersects(&self, other: &Self) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    /// No class at all.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The classes in the set, lowest index (first declared) first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        (0..MAX_CLASSES).filter(|&i| self.0[i / 64] != 0 && self.contains(i))
    }
}

/// Who may have a pool's addresses: `allow` (empty: everyone) and `deny`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolAccess {
    /// When not empty, only clients in at least one of these classes.
    pub allow: ClassSet,
    /// Never clients in any of these classes (deny wins over allow).
    pub deny: ClassSet,
}

impl PoolAccess {
    /// A pool for every client.
    pub const OPEN: Self = Self { allow: ClassSet::EMPTY, deny: ClassSet::EMPTY };

    /// Whether a client in `classes` may have an address of this pool.
    pub fn admits(&self, classes: &ClassSet) -> bool {
        (self.allow.is_empty() || self.allow.intersects(classes)) && !self.deny.intersects(classes)
    }
}

/// Octets to compare with: equal to them, or (`prefix`) starting with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The octets.
    pub octets: Vec<u8>,
    /// Whether the value only has to start with them.
    pub prefix: bool,
}

impl Pattern {
    fn matches(&self, value: &[u8]) -> bool {
        if self.prefix { value.starts_with(&self.octets) } else { value == self.octets.as_slice() }
    }

    /// Whether some value could match both patterns.
    fn compatible(&self, other: &Self) -> bool {
        let (a, b) = (&self.octets, &other.octets);
        match (self.prefix, other.prefix) {
            (false, false) => a == b,
            (true, false) => b.starts_with(a),
            (false, true) => a.starts_with(b),
            (true, true) => a.starts_with(b) || b.starts_with(a),
        }
    }
}

/// One thing a class checks. A class matches a packet when all of its conditions do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Option 60, the vendor class identifier.
    VendorClass(Pattern),
    /// Option 77, the user class: the whole value, or one of its RFC 3004 instances.
    UserClass(Pattern),
    /// Option 82 sub-option 1.
    CircuitId(Pattern),
    /// Option 82 sub-option 2.
    RemoteId(Pattern),
    /// The first octets of the client's hardware address (an OUI).
    MacPrefix(Vec<u8>),
    /// The relay's giaddr lies in this prefix (a directly connected client has none).
    Giaddr(Ipv4Net),
}

/// What a packet offers to conditions, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'m> {
    /// Option 60.
    pub vendor_class: Option<&'m [u8]>,
    /// Option 77.
    pub user_class: Option<&'m [u8]>,
    /// Option 82 circuit-id.
    pub circuit_id: Option<&'m [u8]>,
    /// Option 82 remote-id.
    pub remote_id: Option<&'m [u8]>,
    /// chaddr, `hlen` long.
    pub mac: &'m [u8],
    /// giaddr.
    pub giaddr: Ipv4Addr,
}

impl Condition {
    fn matches(&self, seen: &Seen<'_>) -> bool {
        match self {
            Self::VendorClass(p) => seen.vendor_class.is_some_and(|v| p.matches(v)),
            Self::UserClass(p) => {
                seen.user_class.is_some_and(|v| p.matches(v) || user_classes(v).any(|u| p.matches(u)))
            }
            Self::CircuitId(p) => seen.circuit_id.is_some_and(|v| p.matches(v)),
            Self::RemoteId(p) => seen.remote_id.is_some_and(|v| p.matches(v)),
            Self::MacPrefix(m) => seen.mac.starts_with(m),
            Self::Giaddr(net) => !seen.giaddr.is_unspecified() && net.contains(&seen.giaddr),
        }
    }

    /// Which field it reads, for spotting conditions that contradict each other.
    fn field(&self) -> u8 {
        match self {
            Self::VendorClass(_) => 0,
            Self::UserClass(_) => 1,
            Self::CircuitId(_) => 2,
            Self::RemoteId(_) => 3,
            Self::MacPrefix(_) => 4,
            Self::Giaddr(_) => 5,
        }
    }
}

/// RFC 3004 §4: option 77 is a list of user classes, each a length octet and that many octets. Yields
/// nothing for a value that is not such a list (many clients send one plain string instead).
fn user_classes(mut v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let well_formed = {
        let mut rest = v;
        loop {
            match rest.split_first() {
                None => break true,
                Some((&n, tail)) if n > 0 && tail.len() >= usize::from(n) => rest = &tail[usize::from(n)..],
                Some(_) => break false,
            }
        }
    };
    if !well_formed {
        v = &[];
    }
    std::iter::from_fn(move || {
        let (&n, tail) = v.split_first()?;
        let (one, rest) = tail.split_at(usize::from(n));
        v = rest;
        Some(one)
    })
}

/// A class as the engine uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientClass {
    /// Its name.
    pub name: String,
    /// All must match.
    pub conditions: Vec<Condition>,
    /// What its clients' replies carry over their pool's and subnet's options (under a reservation's).
    pub options: OptionSet,
}

impl ClientClass {
    /// Two conditions on one field that no value satisfies together, as a description; None when the class
    /// can match some packet.
    pub fn contradiction(&self) -> Option<String> {
        for (i, a) in self.conditions.iter().enumerate() {
            for b in &self.conditions[i + 1..] {
                if a.field() != b.field() {
                    continue;
                }
                let fine = match (a, b) {
                    (Condition::VendorClass(x), Condition::VendorClass(y))
                    | (Condition::CircuitId(x), Condition::CircuitId(y))
                    | (Condition::RemoteId(x), Condition::RemoteId(y)) => x.compatible(y),
                    // Option 77 may hold several RFC 3004 instances: two patterns may each match one.
                    (Condition::UserClass(_), Condition::UserClass(_)) => true,
                    (Condition::Giaddr(x), Condition::Giaddr(y)) => {
                        x.contains(&y.network()) || y.contains(&x.network())
                    }
                    _ => true,
                };
                if !fine {
                    return Some(format!("{a:?} and {b:?} cannot both hold"));
                }
            }
        }
        None
    }

    /// The prefix its clients' giaddr must lie in, if it names one.
    pub fn giaddr(&self) -> Option<Ipv4Net> {
        self.conditions.iter().find_map(|c| if let Condition::Giaddr(n) = c { Some(*n) } else { None })
    }
}

/// Every class of the configuration, in the order declared (the index is the class's bit in a [`ClassSet`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientClasses {
    /// The classes.
    pub classes: Vec<ClientClass>,
}

impl ClientClasses {
    /// The classes a packet is in. No allocation: the conditions compare borrowed octets.
    pub fn classify(&self, seen: &Seen<'_>) -> ClassSet {
        let mut set = ClassSet::EMPTY;
        for (i, c) in self.classes.iter().enumerate() {
            if c.conditions.iter().all(|x| x.matches(seen)) {
                set.insert(i);
            }
        }
        set
    }

    /// A class's index by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.name == name)
    }

    /// The option sets of the classes in `set`, in the order to apply them: the last declared first, so
    /// that where two classes set one option, the one declared first wins.
    pub fn options_of(&self, set: ClassSet) -> impl Iterator<Item = &OptionSet> + '_ {
        let n = self.classes.len().min(MAX_CLASSES);
        (0..n).rev().filter(move |&i| set.contains(i)).map(|i| &self.classes[i].options)
    }

    /// The names of the classes in a set, for messages.
    pub fn names(&self, set: &ClassSet) -> Vec<&str> {
        set.iter().filter_map(|i| self.classes.get(i)).map(|c| c.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, prefix: bool) -> Pattern {
        Pattern { octets: s.as_bytes().to_vec(), prefix }
    }

    fn seen<'a>(vendor: Option<&'a [u8]>, user: Option<&'a [u8]>) -> Seen<'a> {
        Seen {
            vendor_class: vendor,
            user_class: user,
            circuit_id: None,
            remote_id: None,
            mac: &[0, 0x1a, 0x2b, 1, 2, 3],
            giaddr: Ipv4Addr::UNSPECIFIED,
        }
    }

    #[test]
    fn class_sets_hold_256_classes() {
        let mut s = ClassSet::EMPTY;
        for i in [0, 63, 64, 200, 255] {
            s.insert(i);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 200, 255]);
        assert!(!s.contains(1) && !s.contains(256));
        let mut t = ClassSet::EMPTY;
        t.insert(200);
        assert!(s.intersects(&t) && !ClassSet::EMPTY.intersects(&s));
    }

    #[test]
    fn deny_wins_over_allow_and_an_empty_allow_admits_everyone() {
        let (mut a, mut b) = (ClassSet::EMPTY, ClassSet::EMPTY);
        a.insert(0);
        b.insert(1);
        let both = {
            let mut x = a;
            x.insert(1);
            x
        };
        let only_a = PoolAccess { allow: a, deny: ClassSet::EMPTY };
        assert!(only_a.admits(&a) && !only_a.admits(&b) && !only_a.admits(&ClassSet::EMPTY));
        let not_b = PoolAccess { allow: ClassSet::EMPTY, deny: b };
        assert!(not_b.admits(&ClassSet::EMPTY) && not_b.admits(&a) && !not_b.admits(&both));
        assert!(PoolAccess { allow: a, deny: b }.admits(&a) && !PoolAccess { allow: a, deny: b }.admits(&both));
    }

    #[test]
    fn exact_and_prefix_patterns() {
        let c = Condition::VendorClass(p("PXEClient", true));
        assert!(c.matches(&seen(Some(b"PXEClient:Arch:00000"), None)));
        assert!(!c.matches(&seen(Some(b"PXEClien"), None)));
        assert!(!c.matches(&seen(None, None)), "an absent option matches nothing");
        let exact = Condition::VendorClass(p("MSFT 5.0", false));
        assert!(exact.matches(&seen(Some(b"MSFT 5.0"), None)) && !exact.matches(&seen(Some(b"MSFT 5.01"), None)));
        assert!(Condition::MacPrefix(vec![0, 0x1a, 0x2b]).matches(&seen(None, None)));
        assert!(!Condition::MacPrefix(vec![0, 0x1a, 0x2c]).matches(&seen(None, None)));
    }

    /// RFC 3004: option 77 holds length-prefixed instances; a plain string (what dhclient and Windows send)
    /// is matched whole.
    #[test]
    fn user_class_matches_the_whole_value_or_one_rfc3004_instance() {
        let c = Condition::UserClass(p("phone", false));
        assert!(c.matches(&seen(None, Some(b"phone"))));
        assert!(c.matches(&seen(None, Some(b"\x03abc\x05phone"))));
        assert!(!c.matches(&seen(None, Some(b"\x03abc\x06phonex"))));
        assert!(!c.matches(&seen(None, Some(b"\x09phone"))), "a malformed list is only matched whole");
    }

    #[test]
    fn contradictions_are_found() {
        let class = |conditions| ClientClass { name: "x".into(), conditions, options: OptionSet::default() };
        let v = |s, prefix| Condition::VendorClass(p(s, prefix));
        assert!(class(vec![v("abc", false), v("abd", false)]).contradiction().is_some());
        assert!(class(vec![v("ab", true), v("abc", false)]).contradiction().is_none());
        assert!(class(vec![v("ab", true), v("ac", true)]).contradiction().is_some());
        let g = |s: &str| Condition::Giaddr(s.parse().unwrap());
        assert!(class(vec![g("10.0.0.0/8"), g("10.1.0.0/16")]).contradiction().is_none());
        assert!(class(vec![g("10.0.0.0/16"), g("10.1.0.0/16")]).contradiction().is_some());
    }
}
