//! Whether a caption is true of a synthetic image, by its gold scene: the judge of
//! negatives (a negative true of its own image is no negative).
//!
//! `cmcl synth` writes every captioned image's shapes to `scenes.jsonl`; [`truth`] reads a
//! caption's parsed scene graph against them. The reading is lenient on purpose, so that
//! it never calls a true caption false: "two stars" needs at least two stars, a plural
//! relation holds when one member holds it, and an object or relation it cannot map to
//! the scene vocabulary makes the caption [`Truth::Unknown`] rather than false.

use serde::{Deserialize, Serialize};

use super::{predicates, Colour, Kind, Predicate, Shape, Size, COLOURS, KINDS};
use crate::text::parse::{AttributeKind, RelationKind, SceneGraph};

/// One captioned image's shapes, as `scenes.jsonl` stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldScene {
    pub image_id: String,
    pub image_size: u32,
    pub shapes: Vec<GoldShape>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldShape {
    /// Canonical noun ("circle").
    pub kind: String,
    pub colour: String,
    /// "small" or "large".
    pub size: String,
    /// Centre and half side of the bounding box, in pixels (rows grow downwards).
    pub cx: i32,
    pub cy: i32,
    pub half: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    True,
    False,
    /// The caption names something outside the scene vocabulary (or the parse missed it).
    Unknown,
}

impl GoldScene {
    pub(super) fn of(image_id: String, image_size: u32, shapes: &[Shape]) -> GoldScene {
        GoldScene {
            image_id,
            image_size,
            shapes: shapes
                .iter()
                .map(|s| GoldShape {
                    kind: s.kind.label().to_string(),
                    colour: s.colour.name().to_string(),
                    size: size_name(s.size).to_string(),
                    cx: s.cx,
                    cy: s.cy,
                    half: s.half,
                })
                .collect(),
        }
    }

    /// The shapes, or the first field no scene of this generator can have.
    fn shapes(&self) -> Result<Vec<Shape>, String> {
        self.shapes
            .iter()
            .map(|g| {
                Ok(Shape {
                    kind: kind_named(&g.kind).ok_or_else(|| format!("kind {:?}", g.kind))?,
                    colour: colour_named(&g.colour)
                        .ok_or_else(|| format!("colour {:?}", g.colour))?,
                    size: match g.size.as_str() {
                        "small" => Size::Small,
                        "large" => Size::Large,
                        other => return Err(format!("size {other:?}")),
                    },
                    cx: g.cx,
                    cy: g.cy,
                    half: g.half,
                })
            })
            .collect()
    }
}

fn size_name(size: Size) -> &'static str {
    match size {
        Size::Small => "small",
        Size::Large => "large",
    }
}

fn kind_named(noun: &str) -> Option<Kind> {
    KINDS
        .into_iter()
        .find(|k| k.nouns().iter().any(|(singular, _)| *singular == noun))
}

fn colour_named(name: &str) -> Option<Colour> {
    COLOURS.into_iter().find(|c| c.name() == name)
}

fn size_named(word: &str) -> Option<Size> {
    [Size::Small, Size::Large]
        .into_iter()
        .find(|s| s.words().contains(&word))
}

fn predicate_named(predicate: &str) -> Option<Predicate> {
    let words: Vec<&str> = predicate
        .split_whitespace()
        .filter(|w| !matches!(*w, "to" | "the" | "on" | "its" | "of"))
        .collect();
    Some(match words.as_slice() {
        ["left"] => Predicate::LeftOf,
        ["right"] => Predicate::RightOf,
        ["above"] | ["over"] | ["top"] => Predicate::Above,
        ["below"] | ["beneath"] | ["under"] | ["underneath"] => Predicate::Below,
        ["next"] | ["beside"] | ["near"] | ["by"] => Predicate::NextTo,
        _ => return None,
    })
}

/// Whether the caption whose parse is `graph` is true of `scene`. An error names a field
/// of the scene that no synthetic scene has.
pub fn truth(scene: &GoldScene, graph: &SceneGraph) -> Result<Truth, String> {
    let shapes = scene.shapes()?;
    if graph.objects.is_empty() {
        return Ok(Truth::Unknown);
    }
    // Each object's candidate shapes.
    let mut referents: Vec<Vec<usize>> = Vec::with_capacity(graph.objects.len());
    for (i, object) in graph.objects.iter().enumerate() {
        let Some(kind) = kind_named(&object.name) else {
            return Ok(Truth::Unknown);
        };
        let (mut colour, mut size, mut count) = (None, None, object.count);
        for a in graph.attributes.iter().filter(|a| a.object == i) {
            match a.kind {
                AttributeKind::Colour => match colour_named(&a.value) {
                    Some(c) => colour = Some(c),
                    None => return Ok(Truth::Unknown),
                },
                AttributeKind::Size => match size_named(&a.value) {
                    Some(s) => size = Some(s),
                    None => return Ok(Truth::Unknown),
                },
                AttributeKind::Count => match a.value.parse::<u32>() {
                    Ok(n) => count = Some(n),
                    Err(_) => return Ok(Truth::Unknown),
                },
                _ => return Ok(Truth::Unknown),
            }
        }
        let matching: Vec<usize> = (0..shapes.len())
            .filter(|&s| {
                let shape = &shapes[s];
                shape.kind == kind
                    && colour.is_none_or(|c| c == shape.colour)
                    && size.is_none_or(|z| z == shape.size)
            })
            .collect();
        let needed = count.unwrap_or(if object.plural { 2 } else { 1 }) as usize;
        if matching.len() < needed.max(1) {
            return Ok(Truth::False);
        }
        referents.push(matching);
    }
    let mut relations = Vec::with_capacity(graph.relations.len());
    for r in &graph.relations {
        if r.kind != RelationKind::Spatial && r.kind != RelationKind::Verb {
            return Ok(Truth::Unknown);
        }
        match predicate_named(&r.predicate) {
            Some(p) => relations.push((r.subject, r.object, p)),
            None => return Ok(Truth::Unknown),
        }
    }
    let mut chosen = vec![usize::MAX; referents.len()];
    let holds = assign(
        &referents,
        &relations,
        &shapes,
        scene.image_size,
        &mut chosen,
        0,
    );
    Ok(if holds { Truth::True } else { Truth::False })
}

/// Depth-first search for one shape per object that satisfies every relation, each
/// relation checked as soon as both its ends are chosen.
fn assign(
    referents: &[Vec<usize>],
    relations: &[(usize, usize, Predicate)],
    shapes: &[Shape],
    image_size: u32,
    chosen: &mut Vec<usize>,
    next: usize,
) -> bool {
    if next == referents.len() {
        return true;
    }
    for &shape in &referents[next] {
        chosen[next] = shape;
        let consistent = relations.iter().all(|&(s, o, p)| {
            if s > next || o > next {
                return true;
            }
            let (a, b) = (chosen[s], chosen[o]);
            a != b && predicates(&shapes[a], &shapes[b], image_size).contains(&p)
        });
        if consistent && assign(referents, relations, shapes, image_size, chosen, next + 1) {
            return true;
        }
    }
    chosen[next] = usize::MAX;
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse::Parser;
    use std::sync::OnceLock;

    fn parser() -> &'static Parser {
        static PARSER: OnceLock<Parser> = OnceLock::new();
        PARSER.get_or_init(|| {
            Parser::load(std::path::Path::new(
                crate::text::parse::lexicon::DEFAULT_WORDNET_DIR,
            ))
            .unwrap_or_else(|e| panic!("{e} (`make apt-deps` installs wordnet-base)"))
        })
    }

    fn shape(kind: &str, colour: &str, size: &str, cx: i32, cy: i32) -> GoldShape {
        GoldShape {
            kind: kind.into(),
            colour: colour.into(),
            size: size.into(),
            cx,
            cy,
            half: 8,
        }
    }

    /// A red circle on the left, two blue stars on the right (one above the other).
    fn scene() -> GoldScene {
        GoldScene {
            image_id: "img-00000".into(),
            image_size: 96,
            shapes: vec![
                shape("circle", "red", "small", 15, 48),
                shape("star", "blue", "large", 75, 15),
                shape("star", "blue", "small", 75, 80),
            ],
        }
    }

    fn judge(caption: &str) -> Truth {
        truth(&scene(), &parser().parse(caption)).unwrap()
    }

    #[test]
    fn objects_attributes_and_counts() {
        assert_eq!(judge("a red circle"), Truth::True);
        assert_eq!(judge("a blue circle"), Truth::False);
        assert_eq!(judge("two blue stars and a small circle"), Truth::True);
        assert_eq!(judge("three blue stars"), Truth::False);
        assert_eq!(judge("a large circle"), Truth::False);
        assert_eq!(judge("a square"), Truth::False);
    }

    #[test]
    fn relations_need_one_consistent_choice_of_shapes() {
        assert_eq!(
            judge("a red circle to the left of a blue star"),
            Truth::True
        );
        assert_eq!(
            judge("a blue star to the left of a red circle"),
            Truth::False
        );
        assert_eq!(judge("a large star above a small star"), Truth::True);
        assert_eq!(judge("a small star above a large star"), Truth::False);
        // Each end needs its own shape: a star is not above itself.
        assert_eq!(judge("a blue star above a blue star"), Truth::True);
        assert_eq!(judge("a large star above a large star"), Truth::False);
    }

    #[test]
    fn what_the_scene_cannot_say_is_unknown() {
        assert_eq!(judge("a dog on a sofa"), Truth::Unknown);
        assert_eq!(judge("a wooden circle"), Truth::Unknown);
    }

    #[test]
    fn a_field_from_elsewhere_is_an_error() {
        let mut bad = scene();
        bad.shapes[0].colour = "teal".into();
        let err = truth(&bad, &parser().parse("a circle")).unwrap_err();
        assert!(err.contains("teal"), "{err}");
    }
}
