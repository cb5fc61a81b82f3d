//! The training-free pixel descriptor.
//!
//! The image is decoded (PNG or JPEG), box-averaged to `size` x `size` RGB, and
//! described by
//! - a global colour histogram, 4 x 4 x 4 RGB bins;
//! - per cell of a `grid` x `grid` layout, a 2 x 2 x 2 colour histogram and an 8-bin
//!   histogram of gradient orientations (unsigned, weighted by magnitude, as in HOG),
//!   which together say what colours and edges sit where.
//!
//! Histograms are square-rooted (their dot product is then the Bhattacharyya
//! coefficient), each block is L2-normalised and weighted so that the global colour and
//! the layout count equally, and the whole vector is L2-normalised.

use super::{decode_rgb, ImageEmbedder, ImageRef, Rgb};
use std::path::Path;

use crate::core::error::{Error, Result};
use crate::index::hnsw::normalized;

/// The pixel descriptor (see the module docs).
pub struct Descriptor {
    pub(super) grid: usize,
    pub(super) size: usize,
    pub(super) bind: bool,
    pub(super) regions: bool,
}

impl ImageEmbedder for Descriptor {
    fn id(&self) -> String {
        let bind = if self.bind { "/bind" } else { "" };
        let regions = if self.regions { "/regions" } else { "" };
        format!(
            "descriptor-v1/grid{}/size{}{bind}{regions}",
            self.grid, self.size
        )
    }

    fn embed(&self, image: &ImageRef) -> Result<Vec<f32>> {
        let path = image.image_path.ok_or_else(|| Error::Stage {
            stage: "retrieval".into(),
            message: format!(
                "image {} has no image_path; the descriptor needs pixels",
                image.image_id
            ),
        })?;
        let pixels = decode_rgb(Path::new(path))?;
        Ok(self.describe(&pixels))
    }
}

impl Descriptor {
    pub fn describe(&self, image: &Rgb) -> Vec<f32> {
        let (s, g) = (self.size, self.grid);
        let small = box_resize(image, s);
        let pixel = |x: usize, y: usize| &small[(y * s + x) * 3..(y * s + x) * 3 + 3];
        let luma = |x: usize, y: usize| {
            let p = pixel(x, y);
            0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
        };
        let mut global = vec![0f32; 64];
        let mut colour = vec![0f32; g * g * 8];
        let mut edges = vec![0f32; g * g * 8];
        // Colour (8 bins) by orientation (8 bins), whole image and per cell.
        let mut bound = vec![0f32; (1 + g * g) * 64];
        let colour_bin = |p: &[f32]| {
            let bin = |v: f32| usize::from(v >= 128.0);
            bin(p[0]) * 4 + bin(p[1]) * 2 + bin(p[2])
        };
        let mut regions = Regions::new(self.regions);
        for y in 0..s {
            for x in 0..s {
                let p = pixel(x, y);
                regions.add_pixel(p, x, y);
                let bin = |v: f32, n: usize| ((v / 256.0 * n as f32) as usize).min(n - 1);
                global[bin(p[0], 4) * 16 + bin(p[1], 4) * 4 + bin(p[2], 4)] += 1.0;
                let cell = (y * g / s) * g + x * g / s;
                colour[cell * 8 + bin(p[0], 2) * 4 + bin(p[1], 2) * 2 + bin(p[2], 2)] += 1.0;
                if x > 0 && y > 0 && x + 1 < s && y + 1 < s {
                    let dx = luma(x + 1, y) - luma(x - 1, y);
                    let dy = luma(x, y + 1) - luma(x, y - 1);
                    let magnitude = (dx * dx + dy * dy).sqrt();
                    // Unsigned orientation in [0, pi): an edge is the same edge both ways.
                    let angle = dy.atan2(dx).rem_euclid(std::f32::consts::PI);
                    let bin = ((angle / std::f32::consts::PI * 8.0) as usize).min(7);
                    edges[cell * 8 + bin] += magnitude;
                    if (self.bind || self.regions) && magnitude > 0.0 {
                        // Both sides of the edge, one pixel along the gradient: the
                        // shape's colour and whatever it stands on.
                        let (ux, uy) = (dx / magnitude, dy / magnitude);
                        for side in [-1.0f32, 1.0] {
                            let nx = (x as f32 + side * ux).round() as usize;
                            let ny = (y as f32 + side * uy).round() as usize;
                            let beside = pixel(nx, ny);
                            regions.add_edge(beside, bin, magnitude);
                            if self.bind {
                                let slot = colour_bin(beside) * 8 + bin;
                                bound[slot] += magnitude;
                                bound[(1 + cell) * 64 + slot] += magnitude;
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(64 + 16 * g * g);
        // Global colour counts as much as the whole layout (which is g*g cells of two blocks).
        out.extend(unit_block(&global, 1.0));
        let cell_weight = 1.0 / (2.0 * (g * g) as f32).sqrt();
        for cell in 0..g * g {
            out.extend(unit_block(&colour[cell * 8..cell * 8 + 8], cell_weight));
            out.extend(unit_block(&edges[cell * 8..cell * 8 + 8], cell_weight));
        }
        if self.bind {
            out.extend(unit_block(&bound[..64], 1.0));
            let cell_weight = 1.0 / (g as f32);
            for cell in 1..=g * g {
                out.extend(unit_block(&bound[cell * 64..cell * 64 + 64], cell_weight));
            }
        }
        regions.finish(s, &mut out);
        normalized(&out)
    }
}

/// Hue bins of the region palette; then black, grey and white.
const HUES: usize = 12;
const PALETTE: usize = HUES + 3;

/// The palette colour of an RGB pixel: unsaturated pixels by lightness, the rest by hue
/// in 30-degree bins centred on red, orange, yellow, ...
fn palette_bin(p: &[f32]) -> usize {
    let (max, min) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
    let chroma = max - min;
    if chroma < 48.0 {
        return HUES + usize::from(max >= 85.0) + usize::from(max >= 170.0);
    }
    let hue = if max == p[0] {
        ((p[1] - p[2]) / chroma).rem_euclid(6.0)
    } else if max == p[1] {
        (p[2] - p[0]) / chroma + 2.0
    } else {
        (p[0] - p[1]) / chroma + 4.0
    } * 60.0;
    (((hue + 15.0) / 30.0) as usize) % HUES
}

/// Running sums of the colour-region block (see `ImageEmbeddingConfig::Descriptor`).
struct Regions {
    on: bool,
    /// Per palette colour: pixels, sum of x, of y, of x², of y².
    moments: [[f32; 5]; PALETTE],
    /// Per palette colour, edge magnitude by orientation bin.
    edges: [[f32; 8]; PALETTE],
}

impl Regions {
    fn new(on: bool) -> Regions {
        Regions {
            on,
            moments: [[0.0; 5]; PALETTE],
            edges: [[0.0; 8]; PALETTE],
        }
    }

    fn add_pixel(&mut self, p: &[f32], x: usize, y: usize) {
        if self.on {
            let (x, y) = (x as f32, y as f32);
            let m = &mut self.moments[palette_bin(p)];
            for (slot, v) in m.iter_mut().zip([1.0, x, y, x * x, y * y]) {
                *slot += v;
            }
        }
    }

    fn add_edge(&mut self, p: &[f32], orientation: usize, magnitude: f32) {
        if self.on {
            self.edges[palette_bin(p)][orientation] += magnitude;
        }
    }

    /// Appends per colour: the square root of its share of the image, its centroid and
    /// spread (in image widths, centred on 0), and its edge orientations as a unit block
    /// scaled like the share. A colour of fewer than `MIN_PIXELS` pixels (anti-aliasing
    /// fringes) counts as absent.
    fn finish(&self, side: usize, out: &mut Vec<f32>) {
        const MIN_PIXELS: f32 = 4.0;
        if !self.on {
            return;
        }
        let (side, total) = (side as f32, (side * side) as f32);
        for (m, edges) in self.moments.iter().zip(&self.edges) {
            let n = m[0];
            if n < MIN_PIXELS {
                out.extend([0.0; 13]);
                continue;
            }
            let share = (n / total).sqrt();
            let (cx, cy) = (m[1] / n, m[2] / n);
            let spread = |sq: f32, c: f32| (sq / n - c * c).max(0.0).sqrt() / side;
            out.extend([
                share,
                (cx + 0.5) / side - 0.5,
                (cy + 0.5) / side - 0.5,
                spread(m[3], cx),
                spread(m[4], cy),
            ]);
            out.extend(unit_block(edges, share));
        }
    }
}

/// `block` square-rooted, L2-normalised and scaled by `weight`.
fn unit_block(block: &[f32], weight: f32) -> Vec<f32> {
    let rooted: Vec<f32> = block.iter().map(|&v| v.max(0.0).sqrt()).collect();
    normalized(&rooted)
        .into_iter()
        .map(|v| v * weight)
        .collect()
}

/// Area-averages `image` to `size` x `size` RGB floats (each output pixel is the mean of
/// the source pixels whose centres fall in it; at least the nearest one).
fn box_resize(image: &Rgb, size: usize) -> Vec<f32> {
    let mut sums = vec![0f32; size * size * 3];
    let mut counts = vec![0u32; size * size];
    for y in 0..image.height {
        let ty = y * size / image.height;
        for x in 0..image.width {
            let tx = x * size / image.width;
            let t = ty * size + tx;
            counts[t] += 1;
            let p = &image.data[(y * image.width + x) * 3..(y * image.width + x) * 3 + 3];
            for c in 0..3 {
                sums[t * 3 + c] += f32::from(p[c]);
            }
        }
    }
    for ty in 0..size {
        for tx in 0..size {
            let t = ty * size + tx;
            if counts[t] > 0 {
                for c in 0..3 {
                    sums[t * 3 + c] /= counts[t] as f32;
                }
            } else {
                // Upscaling: take the source pixel under this one's centre.
                let sx = ((tx * 2 + 1) * image.width / (2 * size)).min(image.width - 1);
                let sy = ((ty * 2 + 1) * image.height / (2 * size)).min(image.height - 1);
                let p = &image.data[(sy * image.width + sx) * 3..(sy * image.width + sx) * 3 + 3];
                for c in 0..3 {
                    sums[t * 3 + c] = f32::from(p[c]);
                }
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white image with a filled `colour` square on the left and a filled `other`
    /// disc on the right.
    fn scene(colour: [u8; 3], other: [u8; 3]) -> Rgb {
        let side = 64;
        let mut data = vec![240u8; side * side * 3];
        let (square_x, disc_x) = (8, 44);
        for y in 0..side {
            for x in 0..side {
                let in_square = (square_x..square_x + 20).contains(&x) && (22..42).contains(&y);
                let (dx, dy) = (x as f32 - disc_x as f32, y as f32 - 32.0);
                let in_disc = dx * dx + dy * dy <= 100.0;
                let paint = match (in_square, in_disc) {
                    (true, _) => colour,
                    (_, true) => other,
                    _ => continue,
                };
                data[(y * side + x) * 3..(y * side + x) * 3 + 3].copy_from_slice(&paint);
            }
        }
        Rgb {
            width: side,
            height: side,
            data,
        }
    }

    const RED: [u8; 3] = [214, 39, 40];
    const BLUE: [u8; 3] = [31, 80, 210];

    #[test]
    fn palette_keeps_nearby_hues_apart() {
        let bin = |rgb: [u8; 3]| palette_bin(&rgb.map(f32::from));
        let named = [
            RED,
            [255, 127, 14],
            [232, 196, 0],
            [34, 160, 60],
            BLUE,
            [128, 52, 168],
            [20, 20, 20],
            [128, 128, 128],
            [236, 234, 226],
        ];
        let bins: std::collections::BTreeSet<usize> = named.iter().map(|&c| bin(c)).collect();
        assert_eq!(bins.len(), named.len(), "{:?}", named.map(bin));
    }

    #[test]
    fn regions_place_each_colour_and_tell_swapped_colours_apart() {
        let describe = |regions| Descriptor {
            grid: 4,
            size: 64,
            bind: false,
            regions,
        };
        let image = scene(RED, BLUE);
        let plain = describe(false).describe(&image);
        let with = describe(true).describe(&image);
        assert_eq!(with.len(), plain.len() + PALETTE * 13);

        // Before the final normalisation: the red square's region sits left of centre,
        // the blue disc's right of it, each with its own share of the pixels.
        let mut regions = Regions::new(true);
        let small = box_resize(&image, 64);
        for y in 0..64 {
            for x in 0..64 {
                regions.add_pixel(&small[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3], x, y);
            }
        }
        let mut block = Vec::new();
        regions.finish(64, &mut block);
        let of = |rgb: [u8; 3]| &block[palette_bin(&rgb.map(f32::from)) * 13..][..13];
        let (red, blue) = (of(RED), of(BLUE));
        assert!(red[1] < -0.1 && blue[1] > 0.1, "red {red:?}, blue {blue:?}");
        assert!(
            red[0] > blue[0],
            "a 20x20 square covers more than a radius-10 disc"
        );

        // The same shapes with their colours swapped give another vector.
        let swapped = describe(true).describe(&scene(BLUE, RED));
        let distance = crate::index::hnsw::cosine_distance(&with, &swapped);
        assert!(distance > 0.01, "{distance}");
    }
}
