//! Digests read aloud. During a ceremony the operators compare a SHA-256 digest out of band, by voice,
//! so it is rendered with the PGP word list (Juola and Zimmermann, 1995), as ICANN's KSK ceremonies do:
//! a byte at an even position becomes a two-syllable word, a byte at an odd position a three-syllable
//! one, which makes a dropped, repeated or swapped word audible. The lists below are the canonical
//! ones; they were taken from PyPI `magic-wormhole` 0.24.0 (`wormhole/_wordlist.py`) and checked
//! word for word, case included, against CPAN `Encode::Wordlist::PGP` 1.1. A test pins their hash.

use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Error {
    #[error("word {position} ({word:?}) is not in the PGP word list")]
    UnknownWord { position: usize, word: String },
    #[error(
        "word {position} ({word:?}) is from the {found} list where the {expected} list was expected (a word was dropped, repeated or swapped)"
    )]
    WrongList { position: usize, word: String, expected: &'static str, found: &'static str },
}

/// The words for `digest`, one per byte, alternating the even and odd lists by position (1-based
/// position 1 is even-list, as in PGP: byte offset 0 is even).
pub fn words(digest: &[u8]) -> Vec<&'static str> {
    digest.iter().enumerate().map(|(i, &b)| if i % 2 == 0 { EVEN[b as usize] } else { ODD[b as usize] }).collect()
}

/// The words of the SHA-256 digest of `data`.
pub fn sha256_words(data: &[u8]) -> Vec<&'static str> {
    words(&Sha256::digest(data))
}

/// `words(digest)` grouped for reading: `per_line` words a line, each line numbered so that the
/// readers can say where they are ("line 2: ..."). `per_line` of 0 is taken as 1.
pub fn format_words(digest: &[u8], per_line: usize) -> String {
    words(digest)
        .chunks(per_line.max(1))
        .enumerate()
        .map(|(i, chunk)| format!("{:>2}: {}", i + 1, chunk.join(" ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turns words read back (any case, separated by whitespace, line numbers `N:` ignored) into bytes,
/// so a reader's transcript can be compared with the digest. A word from the wrong list is an error.
pub fn decode(text: &str) -> Result<Vec<u8>, Error> {
    let find = |list: &[&str; 256], w: &str| list.iter().position(|c| c.eq_ignore_ascii_case(w)).map(|i| i as u8);
    text.split_whitespace()
        .filter(|w| !(w.ends_with(':') && w[..w.len() - 1].chars().all(|c| c.is_ascii_digit())))
        .enumerate()
        .map(|(i, w)| {
            let (own, other, names) =
                if i % 2 == 0 { (&EVEN, &ODD, ("even", "odd")) } else { (&ODD, &EVEN, ("odd", "even")) };
            match (find(own, w), find(other, w)) {
                (Some(b), _) => Ok(b),
                (None, Some(_)) => {
                    Err(Error::WrongList { position: i + 1, word: w.to_owned(), expected: names.0, found: names.1 })
                }
                (None, None) => Err(Error::UnknownWord { position: i + 1, word: w.to_owned() }),
            }
        })
        .collect()
}

const EVEN: [&str; 256] = [
    "aardvark",
    "absurd",
    "accrue",
    "acme",
    "adrift",
    "adult",
    "afflict",
    "ahead",
    "aimless",
    "Algol",
    "allow",
    "alone",
    "ammo",
    "ancient",
    "apple",
    "artist",
    "assume",
    "Athens",
    "atlas",
    "Aztec",
    "baboon",
    "backfield",
    "backward",
    "banjo",
    "beaming",
    "bedlamp",
    "beehive",
    "beeswax",
    "befriend",
    "Belfast",
    "berserk",
    "billiard",
    "bison",
    "blackjack",
    "blockade",
    "blowtorch",
    "bluebird",
    "bombast",
    "bookshelf",
    "brackish",
    "breadline",
    "breakup",
    "brickyard",
    "briefcase",
    "Burbank",
    "button",
    "buzzard",
    "cement",
    "chairlift",
    "chatter",
    "checkup",
    "chisel",
    "choking",
    "chopper",
    "Christmas",
    "clamshell",
    "classic",
    "classroom",
    "cleanup",
    "clockwork",
    "cobra",
    "commence",
    "concert",
    "cowbell",
    "crackdown",
    "cranky",
    "crowfoot",
    "crucial",
    "crumpled",
    "crusade",
    "cubic",
    "dashboard",
    "deadbolt",
    "deckhand",
    "dogsled",
    "dragnet",
    "drainage",
    "dreadful",
    "drifter",
    "dropper",
    "drumbeat",
    "drunken",
    "Dupont",
    "dwelling",
    "eating",
    "edict",
    "egghead",
    "eightball",
    "endorse",
    "endow",
    "enlist",
    "erase",
    "escape",
    "exceed",
    "eyeglass",
    "eyetooth",
    "facial",
    "fallout",
    "flagpole",
    "flatfoot",
    "flytrap",
    "fracture",
    "framework",
    "freedom",
    "frighten",
    "gazelle",
    "Geiger",
    "glitter",
    "glucose",
    "goggles",
    "goldfish",
    "gremlin",
    "guidance",
    "hamlet",
    "highchair",
    "hockey",
    "indoors",
    "indulge",
    "inverse",
    "involve",
    "island",
    "jawbone",
    "keyboard",
    "kickoff",
    "kiwi",
    "klaxon",
    "locale",
    "lockup",
    "merit",
    "minnow",
    "miser",
    "Mohawk",
    "mural",
    "music",
    "necklace",
    "Neptune",
    "newborn",
    "nightbird",
    "Oakland",
    "obtuse",
    "offload",
    "optic",
    "orca",
    "payday",
    "peachy",
    "pheasant",
    "physique",
    "playhouse",
    "Pluto",
    "preclude",
    "prefer",
    "preshrunk",
    "printer",
    "prowler",
    "pupil",
    "puppy",
    "python",
    "quadrant",
    "quiver",
    "quota",
    "ragtime",
    "ratchet",
    "rebirth",
    "reform",
    "regain",
    "reindeer",
    "rematch",
    "repay",
    "retouch",
    "revenge",
    "reward",
    "rhythm",
    "ribcage",
    "ringbolt",
    "robust",
    "rocker",
    "ruffled",
    "sailboat",
    "sawdust",
    "scallion",
    "scenic",
    "scorecard",
    "Scotland",
    "seabird",
    "select",
    "sentence",
    "shadow",
    "shamrock",
    "showgirl",
    "skullcap",
    "skydive",
    "slingshot",
    "slowdown",
    "snapline",
    "snapshot",
    "snowcap",
    "snowslide",
    "solo",
    "southward",
    "soybean",
    "spaniel",
    "spearhead",
    "spellbind",
    "spheroid",
    "spigot",
    "spindle",
    "spyglass",
    "stagehand",
    "stagnate",
    "stairway",
    "standard",
    "stapler",
    "steamship",
    "sterling",
    "stockman",
    "stopwatch",
    "stormy",
    "sugar",
    "surmount",
    "suspense",
    "sweatband",
    "swelter",
    "tactics",
    "talon",
    "tapeworm",
    "tempest",
    "tiger",
    "tissue",
    "tonic",
    "topmost",
    "tracker",
    "transit",
    "trauma",
    "treadmill",
    "Trojan",
    "trouble",
    "tumor",
    "tunnel",
    "tycoon",
    "uncut",
    "unearth",
    "unwind",
    "uproot",
    "upset",
    "upshot",
    "vapor",
    "village",
    "virus",
    "Vulcan",
    "waffle",
    "wallet",
    "watchword",
    "wayside",
    "willow",
    "woodlark",
    "Zulu",
];

const ODD: [&str; 256] = [
    "adroitness",
    "adviser",
    "aftermath",
    "aggregate",
    "alkali",
    "almighty",
    "amulet",
    "amusement",
    "antenna",
    "applicant",
    "Apollo",
    "armistice",
    "article",
    "asteroid",
    "Atlantic",
    "atmosphere",
    "autopsy",
    "Babylon",
    "backwater",
    "barbecue",
    "belowground",
    "bifocals",
    "bodyguard",
    "bookseller",
    "borderline",
    "bottomless",
    "Bradbury",
    "bravado",
    "Brazilian",
    "breakaway",
    "Burlington",
    "businessman",
    "butterfat",
    "Camelot",
    "candidate",
    "cannonball",
    "Capricorn",
    "caravan",
    "caretaker",
    "celebrate",
    "cellulose",
    "certify",
    "chambermaid",
    "Cherokee",
    "Chicago",
    "clergyman",
    "coherence",
    "combustion",
    "commando",
    "company",
    "component",
    "concurrent",
    "confidence",
    "conformist",
    "congregate",
    "consensus",
    "consulting",
    "corporate",
    "corrosion",
    "councilman",
    "crossover",
    "crucifix",
    "cumbersome",
    "customer",
    "Dakota",
    "decadence",
    "December",
    "decimal",
    "designing",
    "detector",
    "detergent",
    "determine",
    "dictator",
    "dinosaur",
    "direction",
    "disable",
    "disbelief",
    "disruptive",
    "distortion",
    "document",
    "embezzle",
    "enchanting",
    "enrollment",
    "enterprise",
    "equation",
    "equipment",
    "escapade",
    "Eskimo",
    "everyday",
    "examine",
    "existence",
    "exodus",
    "fascinate",
    "filament",
    "finicky",
    "forever",
    "fortitude",
    "frequency",
    "gadgetry",
    "Galveston",
    "getaway",
    "glossary",
    "gossamer",
    "graduate",
    "gravity",
    "guitarist",
    "hamburger",
    "Hamilton",
    "handiwork",
    "hazardous",
    "headwaters",
    "hemisphere",
    "hesitate",
    "hideaway",
    "holiness",
    "hurricane",
    "hydraulic",
    "impartial",
    "impetus",
    "inception",
    "indigo",
    "inertia",
    "infancy",
    "inferno",
    "informant",
    "insincere",
    "insurgent",
    "integrate",
    "intention",
    "inventive",
    "Istanbul",
    "Jamaica",
    "Jupiter",
    "leprosy",
    "letterhead",
    "liberty",
    "maritime",
    "matchmaker",
    "maverick",
    "Medusa",
    "megaton",
    "microscope",
    "microwave",
    "midsummer",
    "millionaire",
    "miracle",
    "misnomer",
    "molasses",
    "molecule",
    "Montana",
    "monument",
    "mosquito",
    "narrative",
    "nebula",
    "newsletter",
    "Norwegian",
    "October",
    "Ohio",
    "onlooker",
    "opulent",
    "Orlando",
    "outfielder",
    "Pacific",
    "pandemic",
    "Pandora",
    "paperweight",
    "paragon",
    "paragraph",
    "paramount",
    "passenger",
    "pedigree",
    "Pegasus",
    "penetrate",
    "perceptive",
    "performance",
    "pharmacy",
    "phonetic",
    "photograph",
    "pioneer",
    "pocketful",
    "politeness",
    "positive",
    "potato",
    "processor",
    "provincial",
    "proximate",
    "puberty",
    "publisher",
    "pyramid",
    "quantity",
    "racketeer",
    "rebellion",
    "recipe",
    "recover",
    "repellent",
    "replica",
    "reproduce",
    "resistor",
    "responsive",
    "retraction",
    "retrieval",
    "retrospect",
    "revenue",
    "revival",
    "revolver",
    "sandalwood",
    "sardonic",
    "Saturday",
    "savagery",
    "scavenger",
    "sensation",
    "sociable",
    "souvenir",
    "specialist",
    "speculate",
    "stethoscope",
    "stupendous",
    "supportive",
    "surrender",
    "suspicious",
    "sympathy",
    "tambourine",
    "telephone",
    "therapist",
    "tobacco",
    "tolerance",
    "tomorrow",
    "torpedo",
    "tradition",
    "travesty",
    "trombonist",
    "truncated",
    "typewriter",
    "ultimate",
    "undaunted",
    "underfoot",
    "unicorn",
    "unify",
    "universe",
    "unravel",
    "upcoming",
    "vacancy",
    "vagabond",
    "vertigo",
    "Virginia",
    "visitor",
    "vocalist",
    "voyager",
    "warranty",
    "Waterloo",
    "whimsical",
    "Wichita",
    "Wilmington",
    "Wyoming",
    "yesteryear",
    "Yucatan",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn known_entries() {
        assert_eq!((EVEN[0x00], ODD[0x00]), ("aardvark", "adroitness"));
        assert_eq!((EVEN[0x01], ODD[0x01]), ("absurd", "adviser"));
        assert_eq!((EVEN[0xFF], ODD[0xFF]), ("Zulu", "Yucatan"));
    }

    #[test]
    fn lists_are_256_unique_disjoint_words() {
        let even: BTreeSet<String> = EVEN.iter().map(|w| w.to_lowercase()).collect();
        let odd: BTreeSet<String> = ODD.iter().map(|w| w.to_lowercase()).collect();
        assert_eq!((even.len(), odd.len()), (256, 256));
        assert_eq!(even.intersection(&odd).count(), 0);
    }

    #[test]
    fn lists_match_the_pinned_canonical_hash() {
        // sha256 of the list, one word a line, as extracted from magic-wormhole and Encode::Wordlist::PGP.
        let h = |l: &[&str; 256]| hex::encode(Sha256::digest(format!("{}\n", l.join("\n"))));
        assert_eq!(h(&EVEN), "37a65f88512467edd12a1ab3eeb5f4328230e86711a8efde6333361ce10f4fcf");
        assert_eq!(h(&ODD), "c2f23c2233d4d7291107e8f796c374d0cb1fb30c1391bcb4f6480243de8ebf5a");
    }

    #[test]
    fn encodes_the_published_fingerprint_example() {
        // The example in Encode::Wordlist::PGP's documentation (its author's GnuPG fingerprint).
        let fp = hex::decode("41559711308F2A21B9D5072D621958AFCB50B5F9").unwrap();
        assert_eq!(
            words(&fp).join(" "),
            "cranky equipment preshrunk Babylon chairlift midsummer brickyard Camelot sentence specialist ahead \
             clergyman flagpole bottomless endorse pharmacy spheroid embezzle scorecard Waterloo"
        );
    }

    #[test]
    fn position_decides_the_list() {
        assert_eq!(words(&[0, 0, 0xff, 0xff]), ["aardvark", "adroitness", "Zulu", "Yucatan"]);
        assert!(words(&[]).is_empty());
    }

    #[test]
    fn formats_a_sha256_in_numbered_lines_and_reads_it_back() {
        let digest = Sha256::digest(b"keyrite");
        let text = format_words(&digest, 8);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with(" 1: ") && lines[3].starts_with(" 4: "));
        assert_eq!(lines[0].split_whitespace().count(), 9);
        assert_eq!(decode(&text).unwrap(), digest.to_vec());
        assert_eq!(decode(&text.to_uppercase()).unwrap(), digest.to_vec());
        assert_eq!(format_words(&[1, 2, 3], 0), " 1: absurd\n 2: aftermath\n 3: acme");
        assert_eq!(sha256_words(b"keyrite"), words(&digest));
    }

    #[test]
    fn decode_catches_dropped_and_unknown_words() {
        assert_eq!(
            decode("aardvark aardvark"),
            Err(Error::WrongList { position: 2, word: "aardvark".into(), expected: "odd", found: "even" })
        );
        assert_eq!(decode("aardvark banana"), Err(Error::UnknownWord { position: 2, word: "banana".into() }));
    }
}
