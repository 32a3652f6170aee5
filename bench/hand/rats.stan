// Rats (Gelfand et al. 1990; BUGS Examples Vol. I), non-centred x, as on the seed page:
// Normals with precisions, Gamma(0.001, 0.001) hyperpriors, sigma = 1 / sqrt(tau).
// Hand-written reference for bench/rats_speed.py: vectorized, each precision turned into a
// standard deviation once.
data {
  int<lower=1> N_rat;
  int<lower=1> N_week;
  vector[N_week] x;             // age in days
  matrix[N_rat, N_week] y;      // weight in grams
}
transformed data {
  vector[N_rat * N_week] y_vec = to_vector(y);  // column-major
}
parameters {
  real mu_alpha;
  real<lower=0> tau_alpha;
  real mu_beta;
  real<lower=0> tau_beta;
  real<lower=0> tau;
  vector[N_rat] alpha;
  vector[N_rat] beta;
}
model {
  real sigma_y = inv_sqrt(tau);
  mu_alpha ~ normal(0, 1000);       // precision 1e-6
  tau_alpha ~ gamma(0.001, 0.001);
  mu_beta ~ normal(0, 1000);
  tau_beta ~ gamma(0.001, 0.001);
  tau ~ gamma(0.001, 0.001);
  alpha ~ normal(mu_alpha, inv_sqrt(tau_alpha));
  beta ~ normal(mu_beta, inv_sqrt(tau_beta));
  y_vec ~ normal(to_vector(rep_matrix(alpha, N_week) + beta * x'), sigma_y);
}
generated quantities {
  real sigma = inv_sqrt(tau);
}
