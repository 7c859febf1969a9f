//! One-octet code points as enums that keep the values they do not name.

/// An enum for a one-octet code point whose unnamed values are kept as `Unknown(u8)` (so a message carrying
/// one can be counted and dropped with a precise reason instead of failing to decode). Each variant's code
/// and name stand once, in one table; `ALL`, `code`, `from_code` and `name` are made from it, so they cannot
/// disagree, and a test checks that every octet reads back as itself. The table starts with `Unknown` and the
/// name it goes by; a variant's name is its own unless the row gives another.
macro_rules! byte_coded {
    (@name $variant:ident $text:literal) => {
        $text
    };
    (@name $variant:ident) => {
        stringify!($variant)
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(#[$unknown_doc:meta])* Unknown = $unknown:literal;
            $($(#[$doc:meta])* $variant:ident = $code:literal $(, $text:literal)?;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$doc])* $variant,)+
            $(#[$unknown_doc])*
            Unknown(u8),
        }

        impl $name {
            /// Every named value, in code order (useful for tests and metrics labels).
            pub const ALL: [Self; [$($code),+].len()] = [$(Self::$variant),+];

            /// The wire value.
            pub const fn code(self) -> u8 {
                match self {
                    $(Self::$variant => $code,)+
                    Self::Unknown(c) => c,
                }
            }

            /// The value for a wire value; values without a name become `Unknown`.
            pub const fn from_code(code: u8) -> Self {
                match code {
                    $($code => Self::$variant,)+
                    c => Self::Unknown(c),
                }
            }

            /// The name the RFCs use for it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => byte_coded!(@name $variant $($text)?),)+
                    Self::Unknown(_) => $unknown,
                }
            }
        }

        #[cfg(test)]
        #[test]
        fn codes_round_trip_for_every_value() {
            for c in 0..=255u8 {
                assert_eq!($name::from_code(c).code(), c);
            }
            let codes = $name::ALL.map($name::code);
            assert!(codes.windows(2).all(|w| w[0] < w[1]), "ALL is in code order: {codes:?}");
            assert!(!$name::ALL.iter().any(|v| matches!(v, $name::Unknown(_))));
        }
    };
}
