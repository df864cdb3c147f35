"""Plant plausible bugs in a mirror, one at a time, and show that the suite catches each.

Each mutant is a (file, old text, new text) edit applied to a temporary copy of the
repository (the working tree is never touched); a slice of the conformance matrix and
the trajectory tests then runs there. A mutant "is caught" when pytest fails; the first
failure message is printed. Usage: python tools/plant_bugs.py [--backend torch]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

MUTANTS = {
    "torch": [
        ("wrong derivative (tanh' = 1 - a)", "torch_impl/activations.py", "    return 1 - a * a", "    return 1 - a"),
        ("missing 1/m in dW", "torch_impl/network.py", 'grads[f"dW{l}"] = dZ @ A_prev.T / m', 'grads[f"dW{l}"] = dZ @ A_prev.T'),
        ("wrong leaky slope (0.02)", "torch_impl/activations.py",
         "from reference.activations import LEAKY_SLOPE,", "LEAKY_SLOPE = 0.02\nfrom reference.activations import"),
        ("transposed weight in the forward product (square layer)", "torch_impl/network.py",
         'Z = parameters[f"W{l}"] @ A', 'W = parameters[f"W{l}"]\n        Z = (W.T if W.shape[0] == W.shape[1] else W) @ A'),
        ("wrong broadcasting of b (b.T)", "torch_impl/network.py", '@ A + parameters[f"b{l}"]', '@ A + parameters[f"b{l}"].T.mean()'),
        ("sum instead of mean in the cost", "torch_impl/costs.py", "    return torch.sum(loss) / m", "    return torch.sum(loss)"),
        ("wrong Adam bias correction (t - 1)", "torch_impl/optim.py",
         "c1, c2 = 1 - optimizer.beta1 ** t, 1 - optimizer.beta2 ** t",
         "c1, c2 = 1 - optimizer.beta1 ** (t + 1), 1 - optimizer.beta2 ** (t + 1)"),
        ("wrong mini-batch order (seed + 1)", "torch_impl/training.py",
         "batch_order(X.shape[1], batch_size, seed, epoch)", "batch_order(X.shape[1], batch_size, seed + 1, epoch)"),
        ("wrong dtype promotion (db in float64)", "torch_impl/network.py",
         'grads[f"db{l}"] = torch.sum(dZ, dim=1, keepdim=True) / m',
         'grads[f"db{l}"] = torch.sum(dZ, dim=1, keepdim=True, dtype=torch.float64) / m'),
    ],
}
SLICE = ["tests/test_conformance.py", "tests/test_trajectories.py", "-k",
         "not compiled and not article and (float32 or float64)", "-x", "-q", "-p", "no:randomly",
         "-p", "no:cacheprovider", "--no-header", "-W", "ignore"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="torch", choices=sorted(MUTANTS))
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    caught = 0
    for name, path, old, new in MUTANTS[args.backend]:
        with tempfile.TemporaryDirectory() as tmp:
            for d in ("reference", "torch_impl", "jax_impl", "netparity", "tests"):
                shutil.copytree(os.path.join(root, d), os.path.join(tmp, d),
                                ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(os.path.join(root, "pyproject.toml"), tmp)
            src = open(os.path.join(tmp, path)).read()
            if src.count(old) < 1:
                print(f"[stale] {name}: text not found in {path}")
                continue
            open(os.path.join(tmp, path), "w").write(src.replace(old, new))
            env = {**os.environ, "PYTHONPATH": tmp}
            r = subprocess.run([sys.executable, "-m", "pytest", *SLICE, "--backend", args.backend],
                               cwd=tmp, env=env, capture_output=True, text=True)
            lines = [l for l in r.stdout.splitlines() if l.startswith("E ")]
            ok = r.returncode != 0
            caught += ok
            print(f"[{'caught' if ok else 'MISSED'}] {name}")
            for l in lines[:4]:
                print("    " + l[2:].strip()[:200])
    print(f"{caught}/{len(MUTANTS[args.backend])} mutants caught")
    return 0 if caught == len(MUTANTS[args.backend]) else 1


if __name__ == "__main__":
    sys.exit(main())
