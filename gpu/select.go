package gpu

import (
	"fmt"
	"strconv"
	"strings"
)

// Select returns the devices a job may use, in the order given.
//
// spec is "all", a count N (the first N visible GPUs; 0 means none, CPU
// only), or a comma-separated list of indices or UUIDs ("0,2",
// "GPU-8f6…"). visible is the value of CUDA_VISIBLE_DEVICES (empty when
// unset): when set, only those GPUs are visible and indices in spec count
// within them, as CUDA numbers them.
func Select(devs []Device, spec, visible string) ([]Device, error) {
	vis, err := visibleDevices(devs, visible)
	if err != nil {
		return nil, err
	}
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "" || spec == "all":
		return vis, nil
	case !strings.Contains(spec, ",") && !strings.HasPrefix(spec, "GPU-") && !strings.HasPrefix(spec, "MIG-"):
		n, err := strconv.Atoi(spec)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--gpus %q: want all, a count, or a list of indices or UUIDs like 0,2", spec)
		}
		if n > len(vis) {
			return nil, fmt.Errorf("--gpus %d: only %d GPU(s) visible", n, len(vis))
		}
		return vis[:n], nil
	}
	list, err := pick(vis, spec)
	if err != nil {
		return nil, fmt.Errorf("--gpus %q: %w", spec, err)
	}
	return list, nil
}

// Visible returns the GPU list the environment restricts a job to, in
// CUDA_VISIBLE_DEVICES's syntax, and the variable it came from:
// CUDA_VISIBLE_DEVICES when set, else the GPUs Slurm assigned to the step
// or job (SLURM_STEP_GPUS, SLURM_JOB_GPUS), else "" (every GPU).
//
// Slurm names GPUs by their index on the node. Where its device cgroup
// hides the others, the node shows only the assigned GPUs, numbered from
// 0; nodeGPUs (the count the driver shows) tells the two cases apart.
func Visible(getenv func(string) string, nodeGPUs int) (list, source string) {
	if v := getenv("CUDA_VISIBLE_DEVICES"); v != "" {
		return v, "CUDA_VISIBLE_DEVICES"
	}
	for _, name := range []string{"SLURM_STEP_GPUS", "SLURM_JOB_GPUS"} {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		items := strings.Split(v, ",")
		if len(items) == nodeGPUs {
			for _, it := range items {
				if i, err := strconv.Atoi(strings.TrimSpace(it)); err == nil && i >= nodeGPUs {
					return "", name // every GPU shown is one Slurm assigned
				}
			}
		}
		return v, name
	}
	return "", ""
}

// visibleDevices applies CUDA_VISIBLE_DEVICES. As in CUDA, an empty entry
// hides everything after it, and an unknown entry is an error.
func visibleDevices(devs []Device, visible string) ([]Device, error) {
	visible = strings.TrimSpace(visible)
	if visible == "" {
		return devs, nil
	}
	if visible == "-1" || strings.EqualFold(visible, "none") || strings.EqualFold(visible, "void") {
		return nil, nil
	}
	vis, err := pick(devs, visible)
	if err != nil {
		return nil, fmt.Errorf("CUDA_VISIBLE_DEVICES=%q: %w", visible, err)
	}
	return vis, nil
}

// pick resolves a comma-separated list of indices into devs or UUIDs
// (a unique prefix is enough, as CUDA allows).
func pick(devs []Device, list string) ([]Device, error) {
	var out []Device
	seen := map[string]bool{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			break
		}
		var d *Device
		if i, err := strconv.Atoi(item); err == nil {
			if i < 0 || i >= len(devs) {
				return nil, fmt.Errorf("no GPU %d (%d visible)", i, len(devs))
			}
			d = &devs[i]
		} else {
			for k := range devs {
				if strings.HasPrefix(devs[k].UUID, item) {
					if d != nil {
						return nil, fmt.Errorf("UUID prefix %q matches more than one GPU", item)
					}
					d = &devs[k]
				}
			}
			if d == nil {
				return nil, fmt.Errorf("no GPU with UUID %q", item)
			}
		}
		if seen[d.UUID] {
			return nil, fmt.Errorf("GPU %s listed twice", item)
		}
		seen[d.UUID] = true
		out = append(out, *d)
	}
	return out, nil
}
