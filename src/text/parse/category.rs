//! The visual category of an object name ("person", "animal", "vehicle", ...) from its
//! WordNet senses: scene-graph edits replace an object only within its category, and the
//! negative guards ask whether two captions' main objects are of one kind.

use std::collections::{BTreeSet, HashMap};

use rayon::prelude::*;

use super::lexicon::Lexicon;
use super::SceneGraph;

/// Coarse visual categories, most specific first: (name, WordNet anchor noun). An
/// object is replaced only within its category, and the category is the back-off of the
/// support counts.
pub const OBJECT_CATEGORIES: &[(&str, &str)] = &[
    ("person", "person"),
    ("person", "people"),
    ("animal", "animal"),
    ("food", "food"),
    ("food", "foodstuff"),
    ("plant", "plant"),
    ("clothing", "clothing"),
    ("clothing", "footwear"),
    ("furniture", "furniture"),
    ("appliance", "home appliance"),
    ("appliance", "appliance"),
    ("vehicle", "conveyance"),
    ("tableware", "tableware"),
    ("tableware", "cutlery"),
    ("container", "vessel"),
    ("container", "container"),
    ("electronic equipment", "electronic equipment"),
    ("sports equipment", "sports equipment"),
    ("toy", "plaything"),
    ("instrument", "musical instrument"),
    ("room", "room"),
    ("building", "building"),
    ("road", "way"),
    ("structure", "structure"),
    ("device", "device"),
    ("body part", "body part"),
    ("geological formation", "geological formation"),
    ("body of water", "body of water"),
    ("shape", "shape"),
];

/// Lexicographer files of things one can see.
const CONCRETE: &[&str] = &[
    "noun.person",
    "noun.animal",
    "noun.food",
    "noun.plant",
    "noun.artifact",
    "noun.body",
    "noun.object",
    "noun.shape",
];

/// Categories a later sense may give when the most frequent sense has none ("cake" the
/// food after the bar of soap, "table" the furniture after the tabular array). Others
/// come from the most frequent sense only, so "sand" never becomes a person by its
/// second sense (the writer).
const LATER_SENSE_CATEGORIES: &[&str] = &[
    "food",
    "tableware",
    "container",
    "furniture",
    "appliance",
    "vehicle",
    "clothing",
];

/// Common caption nouns whose most frequent WordNet sense is not the one photos show
/// ("plate" as home plate, "snow" as a person's name, "bat" the animal beside a batter,
/// "monitor" the proctor, "mouse" the rodent beside a keyboard).
const SENSE_OVERRIDES: &[(&str, Option<&str>)] = &[
    ("plate", Some("tableware")),
    ("ball", Some("sports equipment")),
    ("bat", Some("sports equipment")),
    ("racket", Some("sports equipment")),
    ("racquet", Some("sports equipment")),
    ("surfboard", Some("sports equipment")),
    ("ski", Some("sports equipment")),
    ("snowboard", Some("sports equipment")),
    ("television", Some("electronic equipment")),
    ("monitor", Some("electronic equipment")),
    ("mouse", Some("electronic equipment")),
    ("toilet", Some("fixture")),
    ("sink", Some("fixture")),
    ("bathtub", Some("fixture")),
    ("tub", Some("fixture")),
    ("shower", Some("fixture")),
    ("snow", None),
    ("water", None),
    ("grass", Some("plant")),
    // The synthetic set's shapes (a gem and a celestial body come first in WordNet).
    ("diamond", Some("shape")),
    ("star", Some("shape")),
];

/// How many senses deep a later sense may decide.
const LATER_SENSES: usize = 4;

/// Nouns that name a part of the picture, not a thing in it: replacing "background" with
/// "distance" changes no fact.
pub const SCENE_POSITIONS: &[&str] = &[
    "background",
    "foreground",
    "distance",
    "middle",
    "side",
    "top",
    "front",
    "back",
    "bottom",
    "view",
    "picture",
    "image",
    "photo",
    "photograph",
    "shot",
    "close",
    "closeup",
    "center",
    "centre",
    "corner",
    "edge",
    "left",
    "right",
    "area",
    "scene",
    "way",
    // Vague or scene-wide: "surface" -> "shelf" may still be true.
    "surface",
    "ground",
    "air",
    "sky",
    // Words for a kind of thing, not a thing: "the meal" -> "the pizza", "a purple
    // outfit" -> "a purple shirt" may describe the same; "a bowl of vegetable" is no
    // English.
    "food",
    "meal",
    "dish",
    "snack",
    "breakfast",
    "lunch",
    "dinner",
    "dessert",
    "drink",
    "beverage",
    "vegetable",
    "fruit",
    "outfit",
    "clothes",
    "clothing",
    "gear",
    "equipment",
    "item",
    "thing",
    "stuff",
    "object",
];

/// Categories too broad or scene-like for a replacement, or another caption's object, to be surely false ("slope" ->
/// "mountain", "beach" -> "shore").
pub const VAGUE_CATEGORIES: &[&str] = &[
    "geological formation",
    "body of water",
    "structure",
    // "walkway" -> "road", "crosswalk" -> "road": ways overlap.
    "road",
];

/// People by sex, for telling whether two captions' people differ: roles ("skier",
/// "player") and groups ("people", "kids") may be either.
const MALE: &[&str] = &[
    "man",
    "boy",
    "guy",
    "gentleman",
    "father",
    "dad",
    "son",
    "husband",
    "boyfriend",
    "king",
    "grandfather",
    "businessman",
    "policeman",
    "fisherman",
];
const FEMALE: &[&str] = &[
    "woman",
    "girl",
    "lady",
    "mother",
    "mom",
    "daughter",
    "wife",
    "girlfriend",
    "queen",
    "grandmother",
    "businesswoman",
    "policewoman",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// The sex a people noun (singular or plural lemma) names, if it names one.
pub fn sex(noun: &str) -> Option<Sex> {
    match noun {
        _ if MALE.contains(&noun) || noun == "men" => Some(Sex::Male),
        _ if FEMALE.contains(&noun) || noun == "women" => Some(Sex::Female),
        _ => None,
    }
}

/// Whether two people nouns name people of different sex ("man" and "girl").
pub fn opposite_sex(a: &str, b: &str) -> bool {
    matches!((sex(a), sex(b)), (Some(x), Some(y)) if x != y)
}

/// Grown-ups and children among the people nouns (singular lemmas).
const ADULTS: &[&str] = &["man", "woman", "lady", "gentleman"];
const CHILDREN: &[&str] = &["boy", "girl", "child", "baby"];

/// Whether a photo cannot show one person as both: another sex ("man" and "woman") or
/// another age ("man" and "boy"). "child" and "boy" can be one person, as can "man" and
/// "gentleman", so these are no contrast.
pub fn contrasting_people(a: &str, b: &str) -> bool {
    let adult = |w: &str| ADULTS.contains(&w);
    let young = |w: &str| CHILDREN.contains(&w);
    opposite_sex(a, b) || (adult(a) && young(b)) || (young(a) && adult(b))
}

/// The visual category of a noun lemma from its senses, most frequent first: the first
/// concrete sense under an anchor of [`OBJECT_CATEGORIES`] decides ("table" the
/// furniture, not the tabular array), within the limits above. None when no sense
/// qualifies.
pub fn object_category(lex: &Lexicon, lemma: &str) -> Option<&'static str> {
    if let Some((_, category)) = SENSE_OVERRIDES.iter().find(|(word, _)| *word == lemma) {
        return *category;
    }
    let wn = lex.wordnet();
    let per_anchor: Vec<Vec<(&str, bool)>> = OBJECT_CATEGORIES
        .iter()
        .map(|(_, anchor)| wn.senses_under(lemma, anchor))
        .collect();
    let senses = per_anchor.first().map_or(0, Vec::len).min(LATER_SENSES);
    let has_food_sense = (0..senses).any(|sense| per_anchor[0][sense].0 == "noun.food");
    for sense in 0..senses {
        let (lexname, _) = per_anchor[0][sense];
        if !CONCRETE.contains(&lexname) {
            continue;
        }
        let found = OBJECT_CATEGORIES
            .iter()
            .zip(&per_anchor)
            .find(|(_, under)| under[sense].1)
            .map(|((name, _), _)| *name)
            .filter(|name| sense == 0 || LATER_SENSE_CATEGORIES.contains(name));
        if let Some(name) = found {
            // A plant people eat ("banana", "broccoli") is food in a caption.
            return Some(if name == "plant" && has_food_sense {
                "food"
            } else {
                name
            });
        }
    }
    None
}

/// The visual category of every object name of some graphs.
pub type Categories = HashMap<String, Option<&'static str>>;

/// [`object_category`] of every object name in `graphs`, each looked up once (a WordNet
/// walk per anchor is too slow to repeat per candidate).
pub fn categories(lex: &Lexicon, graphs: &[SceneGraph]) -> Categories {
    let names: BTreeSet<&str> = graphs
        .iter()
        .flat_map(|g| g.objects.iter().map(|o| o.name.as_str()))
        .collect();
    names
        .into_par_iter()
        .map(|name| (name.to_string(), object_category(lex, name)))
        .collect()
}

/// The category of `name`: from `known` when it was looked up there, else from WordNet.
pub fn category_of(known: &Categories, lex: &Lexicon, name: &str) -> Option<&'static str> {
    match known.get(name) {
        Some(category) => *category,
        None => object_category(lex, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse::tests::parser;

    #[test]
    fn people_contrast_by_sex_or_age_only() {
        for (a, b) in [
            ("man", "woman"),
            ("boy", "girl"),
            ("man", "boy"),
            ("woman", "child"),
            ("lady", "gentleman"),
        ] {
            assert!(
                contrasting_people(a, b) && contrasting_people(b, a),
                "{a} {b}"
            );
        }
        for (a, b) in [
            ("man", "gentleman"),
            ("woman", "lady"),
            ("child", "boy"),
            ("baby", "girl"),
            ("man", "person"),
            ("dog", "cat"),
        ] {
            assert!(
                !contrasting_people(a, b) && !contrasting_people(b, a),
                "{a} {b}"
            );
        }
    }

    #[test]
    fn categories_of_common_caption_nouns() {
        let lex = parser().lexicon();
        for (word, want) in [
            ("table", Some("furniture")),
            ("cake", Some("food")),
            ("street", Some("road")),
            ("refrigerator", Some("appliance")),
            ("train", Some("vehicle")),
            ("tower", Some("structure")),
            ("plate", Some("tableware")),
            ("dog", Some("animal")),
            ("woman", Some("person")),
            ("shirt", Some("clothing")),
            ("kitchen", Some("room")),
            ("pole", None),
            ("snow", None),
            ("sand", None),
            ("banana", Some("food")),
            ("tree", Some("plant")),
            ("diamond", Some("shape")),
            ("circle", Some("shape")),
        ] {
            assert_eq!(object_category(lex, word), want, "{word}");
        }
    }
}
