//! AdamW with its state in named tensors, so a checkpoint can hold the moments and a
//! resumed run continues exactly where the killed one stopped (candle-nn's AdamW keeps
//! them private).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub epochs: usize,
    /// Pairs per step.
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Decoupled weight decay, applied to matrices and kernels only.
    pub weight_decay: f64,
    /// Steps of linear warm-up, then cosine decay to 10% over the run.
    pub warmup_steps: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            epochs: 10,
            batch_size: 64,
            learning_rate: 2e-3,
            weight_decay: 0.01,
            warmup_steps: 50,
        }
    }
}

impl OptimConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.epochs == 0 || self.batch_size < 2 {
            return Err("epochs must be at least 1 and batch_size at least 2".into());
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 || self.weight_decay < 0.0 {
            return Err("learning_rate must be positive, weight_decay not negative".into());
        }
        Ok(())
    }

    /// The learning rate at `step` of `total`.
    pub fn rate(&self, step: usize, total: usize) -> f64 {
        let peak = self.learning_rate;
        if step < self.warmup_steps {
            return peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
    }
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

pub struct AdamW {
    vars: Vec<(String, Var)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    /// Steps taken so far.
    pub step: usize,
    weight_decay: f64,
}

impl AdamW {
    /// Over `vars` in name order.
    pub fn new(mut vars: Vec<(String, Var)>, weight_decay: f64) -> Result<AdamW> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(AdamW {
            first: vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?,
            second: vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?,
            vars,
            step: 0,
            weight_decay,
        })
    }

    pub fn step(&mut self, grads: &GradStore, rate: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (correct1, correct2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(grad) = grads.get(var) else { continue };
            let m = ((&self.first[i] * BETA1)? + (grad * (1.0 - BETA1))?)?;
            let v = ((&self.second[i] * BETA2)? + (grad.sqr()? * (1.0 - BETA2))?)?;
            let update = ((&m / correct1)? / ((&v / correct2)?.sqrt()? + EPSILON)?)?;
            let decay = if var.rank() >= 2 {
                self.weight_decay
            } else {
                0.0
            };
            let decayed = (var.as_tensor() * (1.0 - rate * decay))?;
            var.set(&(decayed - (update * rate)?)?)?;
            (self.first[i], self.second[i]) = (m, v);
        }
        Ok(())
    }

    /// The moments by name (`first.NAME`, `second.NAME`), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut state = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            state.insert(format!("first.{name}"), self.first[i].clone());
            state.insert(format!("second.{name}"), self.second[i].clone());
        }
        state
    }

    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [
                ("first", &mut self.first[i]),
                ("second", &mut self.second[i]),
            ] {
                let key = format!("{prefix}.{name}");
                let saved = state.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimizer state has no {key}"))
                })?;
                if saved.dims() != var.dims() {
                    return Err(candle_core::Error::Msg(format!(
                        "{key} has the wrong shape"
                    )));
                }
                *slot = saved.to_device(var.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn one_step_matches_the_adamw_formula() {
        let var = Var::from_slice(&[1.0f32, -2.0], (1, 2), &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], 0.1).unwrap();
        let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap(), 0.01).unwrap();
        // First step: m/(1-b1) = g, v/(1-b2) = g^2, so the update is sign(g) (up to eps).
        let got = var
            .as_tensor()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        for (g, w) in got[0].iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        let state = opt.state();
        let mut again = AdamW::new(vec![("w".into(), var.clone())], 0.1).unwrap();
        again.load_state(&state, 1).unwrap();
        assert_eq!(again.step, 1);
    }

    #[test]
    fn the_rate_warms_up_then_decays_to_a_tenth() {
        let c = OptimConfig {
            warmup_steps: 10,
            learning_rate: 1.0,
            ..OptimConfig::default()
        };
        assert!((c.rate(0, 100) - 0.1).abs() < 1e-12);
        assert!((c.rate(9, 100) - 1.0).abs() < 1e-12);
        assert!((c.rate(100, 100) - 0.1).abs() < 1e-12);
        assert!(c.rate(50, 100) < 1.0 && c.rate(50, 100) > 0.1);
    }
}
