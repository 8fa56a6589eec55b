"""`electra pretrain`: train a generator and a discriminator jointly with replaced-token detection.

    electra pretrain --preset tiny --data DATASET_DIR --out RUN_DIR --max-time 600
    torchrun --standalone --nproc_per_node=8 -m electra pretrain --preset base --data DATASET_DIR --out RUN_DIR

Re-running into the same RUN_DIR resumes exactly from its latest checkpoint (model, optimizer, schedule,
data position; every random draw is seeded from (seed, step, micro-batch), so nothing else needs saving).
The same code runs on one device or under torchrun (DDP; gradients all-reduced on the last micro-step only).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from electra import dist
from electra.budget import overrun_note, resume_planner
from electra.checkpoint import amend_state, discard_failed_start, lock_run, save_checkpoint, write_run_files
from electra.data.dataset import BatchStream, PretrainData
from electra.data.mixture import Mixture
from electra.data.tokenizer import read_vocab
from electra.device import (
    StepGraph,
    compile_model,
    cuda_graphs,
    full_step,
    host_batch,
    to_device,
    unpadded,
)
from electra.errors import UserError
from electra.health import Monitor
from electra.heldout import evaluate
from electra.logs import (
    NullLogger,
    RunLogger,
    disc_columns,
    fmt_duration,
    log_also,
    log_eval,
    plot_curves,
    require_wandb,
)
from electra.meter import IntervalMeter
from electra.model import Block, count_params, set_activation_checkpointing, set_residual
from electra.new_words import start_new_words
from electra.objective import Electra, SpecialTokens
from electra.optim import build_optimizer, lr_at, set_lr
from electra.precision import LossScaler, autocast_dtype
from electra.precision import autocast as precision_autocast
from electra.resume import load_optimizer, restore
from electra.run_setup import (
    check_dataset,
    check_step_modes,
    extra_held_out,
    held_out_data,
    inject_fault,
    micro_seed,
    parse_args,
    resolve_run,
    training_rows,
)
from electra.stopping import StopAtStepEnd
from electra.word_masking import continuation_table


def train(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    d = dist.init(args.device)
    if args.data is None:
        raise UserError("--data DATASET_DIR is required (a folder written by `electra prepare`)")
    datasets = [PretrainData(path) for path in args.data]
    data = datasets[0]  # its vocabulary, sequence length and held-out split; any others are checked alike
    cfg, ckpt, init = resolve_run(args, overrides, data)
    t = cfg.train
    check_dataset(args, cfg, data, resumed=ckpt is not None)
    train_rows = training_rows(args, datasets)  # one training split, or several mixed
    mixture = train_rows if isinstance(train_rows, Mixture) else None
    held = held_out_data(args, data, resumed=ckpt is not None)  # where the held-out rows come from
    also = extra_held_out(args, data)  # --also-eval: more held-out splits, logged beside
    special = SpecialTokens(data.special.pad, data.special.cls, data.special.sep, data.special.mask)
    micro = t.micro_batch_size or t.global_batch_size // d.world_size
    cuda = d.device.type == "cuda"
    graphs = cuda and cuda_graphs(t)
    unpad = unpadded(t.unpad, d.device, graphs)
    n_micro = t.global_batch_size // (micro * d.world_size)
    step_graph = t.compile and t.compile_mode == "step-graph"
    check_step_modes(t, cuda, d.world_size, n_micro, unpad)
    # on CUDA the next steps are built (collated, packed, pinned) in a background thread while the GPU works
    stream = BatchStream(train_rows, t.global_batch_size, micro, t.seed, d.rank, d.world_size,
                         prefetch=2 if cuda else 0, transform=lambda b: host_batch(b, unpad, pin=cuda))

    torch.manual_seed(t.seed)
    model = Electra(cfg, special).to(d.device)
    set_residual(model, t.residual)
    set_activation_checkpointing(model, t.activation_checkpointing)
    if init is not None:
        from electra.hf import load_into
        loaded = load_into(model, init)
        # words an extended vocabulary (checked by resolve_run) adds in the model's free slots; none if the same
        start_new_words(model, init.vocab_path, data.vocab_path, init.lowercase, init.strip_accents)
    if cfg.objective.masking != "token":  # which ids are `##` pieces: from the dataset's vocabulary
        model.set_word_pieces(continuation_table(read_vocab(data.vocab_path), cfg.model.vocab_size))
    if cfg.objective.generator == "unigram" and ckpt is None:  # a resumed run reads its prior from the checkpoint
        counts = torch.from_numpy(train_rows.token_counts(cfg.model.vocab_size))
        counts[list(special)] = 0  # words only: never [PAD], [CLS], [SEP] or [MASK]
        if counts.sum() == 0:
            raise UserError(f"{data.root}: the training split has no tokens to build the unigram generator from")
        model.set_prior(counts)
    # weights, data position and counters of the checkpoint, if any; the --init folder (kept in every checkpoint:
    # the model card names it) is the first command's
    resumed = restore(ckpt, model, stream, d.device, micro, t.global_batch_size, d.world_size,
                      str(args.init) if init is not None else None)
    step, elapsed_before, tokens_seen, state = resumed.step, resumed.elapsed, resumed.tokens_seen, resumed.state
    start_step = step
    planner, plan = resume_planner(t.time_budget, t.max_steps, t.warmup_steps, state.get("budget_plan"), step,
                                   d.world_size)
    if plan is not None:  # the schedule it planned, whatever the command line that resumed it says
        t.max_steps, t.warmup_steps = plan.steps, plan.warmup
    spent = planner is not None and elapsed_before >= t.time_budget
    if spent:  # nothing of the budget left to plan with
        t.max_steps, planner = step, None
    dtype = autocast_dtype(t.precision, d.device)  # bf16, fp16 (with loss scaling) or None: fp32
    autocast = precision_autocast(dtype, d.device)
    scaler = LossScaler(dtype == torch.float16, d.device)
    scaler.load_state_dict(state.get("grad_scaler", {}))
    raw = model
    fsdp = t.parallel == "fsdp" and d.world_size > 1
    if fsdp:
        dist.shard_model(raw, (Block,))
    optimizer = build_optimizer(raw, t.optimizer, t.lr, t.weight_decay, (t.adam_beta1, t.adam_beta2), t.adam_eps)
    if resumed.optimizer is not None:
        load_optimizer(raw, optimizer, resumed.optimizer, fsdp, ckpt)
    # only now that the checkpoint has loaded: a resume refused above leaves the run's config.json as it was, and
    # so does a finished run re-run (nothing to train: its checkpoint keeps the config it was trained with)
    if d.is_main and step < t.max_steps:
        write_run_files(args.out, cfg, data, mixture, held)
    log = RunLogger(args.out, step, t.max_steps, not args.no_tensorboard, args.wandb,
                    cfg.to_dict()) if d.is_main else NullLogger()
    if d.world_size > 1 and not fsdp:
        model = DDP(raw, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    step_model = compile_model(model, t.compile_mode) if t.compile else model
    params = [p for p in raw.parameters() if p.requires_grad]
    max_norm = t.clip_norm if t.clip_norm > 0 else float("inf")  # clip_norm 0: no clipping
    whole = StepGraph(full_step(step_model, optimizer, params, max_norm, autocast), optimizer) if step_graph else None

    def grad_sync(last: bool) -> contextlib.AbstractContextManager:
        """All-reduce (or reduce-scatter) gradients on the last micro-step of an optimizer step only."""
        if fsdp:
            raw.set_requires_gradient_sync(last)
        elif d.world_size > 1 and not last:
            return model.no_sync()
        return contextlib.nullcontext()

    gen_params = sum(count_params(m) for m in (raw.generator, raw.generator_head) if m is not None)
    gen_desc = (f"generator+head {gen_params / 1e6:.2f}M (shared embeddings counted in both)" if raw.generator is not None
                else f"no generator network ({cfg.objective.generator} fakes)")
    log.print(f"config:\n{cfg.to_json()}")
    named = {torch.bfloat16: "bf16", torch.float16: "fp16 (dynamic loss scaling)", None: "fp32"}[dtype]
    log.print(f"device {d.device} x {d.world_size} | precision {named}"
              f"{' (bf16 residual stream)' if dtype == torch.bfloat16 and t.residual == 'bf16' else ''} | "
              f"{'unpadded' if unpad else 'padded'} encoders{' | each step one CUDA graph' if whole else ''} | params: total {count_params(raw) / 1e6:.2f}M, {gen_desc}"
              f" | {len(train_rows):,} train{mixture.describe() if mixture else ''} / {len(held.valid):,} held-out examples"
              f"{f' (from {args.eval_data})' if held is not data else ''} | global batch "
              f"{t.global_batch_size} = {micro} x {n_micro} micro-steps x {d.world_size} ranks | "
              f"{cfg.max_predictions} masked slots per row")
    log.print(f"resuming from {ckpt} at step {step}" if ckpt else f"fresh run into {args.out}" + (
        f", initialised from {args.init} ({', '.join(loaded)})"
        if init is not None else ""))
    if resumed.note:
        log.print(resumed.note)

    # Ctrl-C; and SIGTERM (a scheduler's preemption or time limit) for a single process. Under torchrun a worker
    # also gets SIGTERM when a peer dies, and waiting for a collective with the dead peer would only delay the
    # restart, so there SIGTERM keeps its default (the run resumes from the last periodic checkpoint).
    # main() puts the previous handlers back, however train() ends.
    stop = StopAtStepEnd((signal.SIGINT, signal.SIGTERM) if d.world_size == 1 else (signal.SIGINT,)).install()
    health = Monitor(t.warmup_steps, electra=cfg.objective.objective == "electra",
                     trained_generator=cfg.objective.trained_generator)
    meter = IntervalMeter(step, d.device, n_micro * d.world_size, t.global_batch_size * t.seq_len,
                          carried=state.get("log_interval") if ckpt is not None else None, holds_carried=d.is_main)
    first_bad = torch.full((), -1, dtype=torch.long, device=d.device)
    start_time = time.time()

    def elapsed() -> float:
        return elapsed_before + time.time() - start_time

    def evaluates() -> bool:
        """Whether held-out evaluations come during training (a --time-budget plan changes max_steps): the health
        monitor judges them, else the training metrics (no --eval-every, one after max_steps, no held-out rows)."""
        return 0 < t.eval_every < t.max_steps and len(held.valid) > 0

    def run_eval() -> None:
        log_eval(log, step, evaluate(raw, held, cfg, micro, d, autocast), health, cfg.objective.joint)
        for prefix, other in also.items():
            log_also(log, step, prefix, evaluate(raw, other, cfg, micro, d, autocast))

    def check_finite() -> None:
        bad = int(first_bad.item())
        if bad >= 0:
            raise UserError(f"non-finite loss at step {bad} (lr {schedule_lr(bad):.2e}); "
                            f"stopped without saving it. Lower --lr, raise --warmup-steps or use --precision fp32, "
                            f"then run the command again (it resumes from the last checkpoint, if the run has one)")

    def save() -> Path | None:
        check_finite()
        if fsdp:  # collective: every rank takes part in gathering the full tensors
            weights, opt_sd = dist.gather_full_state(raw, optimizer)
            weights = {k: v for k, v in weights.items() if not k.startswith(tuple(raw.aliases))}
        else:
            weights, opt_sd = raw.weights(), optimizer.state_dict()
        interval = meter.state(step)  # a resume logs the interval in progress whole
        if d.is_main:
            path = save_checkpoint(args.out, step, weights, opt_sd,
                                   {"data": stream.state_dict(), "elapsed": elapsed(),
                                    "tokens_seen": tokens_seen, "world_size": d.world_size, "config": cfg.to_dict(),
                                    **({"grad_scaler": scaler.state_dict()} if scaler.enabled else {}),
                                    **({"budget_plan": plan.to_dict()} if plan else {}),
                                    # what bit-for-bit reproduction also needs (float reductions follow them)
                                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                                    **({"init": resumed.init} if resumed.init else {}),
                                    **({"log_interval": interval} if interval else {})},
                                   t.keep_last, t.keep_every)
            log.print(f"saved {path}")
        dist.barrier()
        return path if d.is_main else None

    def schedule_lr(at: int) -> float:
        return lr_at(at, t.lr, t.max_steps, t.warmup_steps, t.lr_decay_power, t.lr_schedule, t.decay_fraction)

    def plan_schedule() -> None:
        """--time-budget: the window's steps are timed; evaluate and save once, timed, then fit the schedule into
        what is left of the budget and record the plan in that checkpoint and config.json (budget.py)."""
        nonlocal plan
        took = time.perf_counter()
        run_eval()
        took_eval, took = time.perf_counter() - took, time.perf_counter()
        path = save()
        took_save = time.perf_counter() - took
        plan = planner.plan(step, elapsed(), took_eval if len(held.valid) else 0.0, took_save, t.eval_every,
                            t.save_every, lambda values: dist.max_over_ranks(values, d.device))
        t.max_steps, t.warmup_steps = plan.steps, plan.warmup
        health.warmup = max(1, t.warmup_steps)
        log.set_total(t.max_steps)
        log.update_config(cfg.to_dict())
        log.print(plan.describe())
        if note := overrun_note(plan, elapsed()):
            log.print(note)
        if d.is_main:  # the checkpoint just saved runs on the plan: a resume from it keeps it
            amend_state(path, {"config": cfg.to_dict(), "budget_plan": plan.to_dict()})
            write_run_files(args.out, cfg, data, mixture, held)

    reason = "max_steps"
    evaluated = saved = -1  # the steps of the last periodic evaluation and checkpoint: a stop there repeats neither
    while step < t.max_steps:
        micro_batches = stream.next_step()
        lr = schedule_lr(step)
        for m, (batch, packing) in enumerate(micro_batches):
            real_tokens = int(batch.attention_mask.sum())  # the host copy: no device sync
            batch = to_device(batch, d.device)
            packing = packing.to(d.device) if packing is not None else None
            torch.manual_seed(micro_seed(t.seed, step, d.rank * n_micro + m))
            last = m == len(micro_batches) - 1
            if whole is not None:  # forward, backward, clipping and update: one graph replay
                set_lr(optimizer, lr)
                out, grad_norm = whole(*batch)
            else:
                if graphs:  # a new iteration: the previous one's graph outputs may be overwritten
                    torch.compiler.cudagraph_mark_step_begin()
                with grad_sync(last):
                    with autocast:
                        out = step_model(*batch, packing=packing)
                    scaler.scale(out.losses.total / n_micro).backward()
            meter.add(out, real_tokens)
            tokens_seen += int(batch.input_ids.numel()) * d.world_size
        if whole is None:  # else the graph replay did all this
            scaler.unscale(optimizer)  # fp16: the gradients / S, before clipping measures them
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            if hasattr(grad_norm, "full_tensor"):  # FSDP: a replicated DTensor
                grad_norm = grad_norm.full_tensor()
            set_lr(optimizer, lr)
            scaler.step(optimizer)  # fp16: skipped, and S halved, if a gradient overflowed
            optimizer.zero_grad(set_to_none=True)
        nonfinite = ~torch.isfinite(out.losses.total.detach())
        if not scaler.enabled:  # with loss scaling an overflowing gradient is a skipped step, not a failure
            nonfinite |= ~torch.isfinite(grad_norm)
        first_bad.masked_fill_(nonfinite & (first_bad < 0), step)  # no host-to-device copy, no sync
        step += 1
        if d.device.type == "cpu":  # a host sync costs nothing here: stop at the first bad step
            check_finite()

        if step % t.log_every == 0 or step == t.max_steps:
            check_finite()
            metrics, step_seconds = meter.close(step)
            metrics.update({"train/lr": lr, "train/grad_norm": float(grad_norm)})
            if scaler.enabled:
                metrics.update({"train/loss_scale": scaler.loss_scale, "train/skipped_steps": scaler.take_skipped()})
            log.log(step, metrics, " | ".join([
                f"step {step:>7d}/{t.max_steps} | loss {metrics['train/loss']:.3f}",
                f"mlm {metrics['train/mlm_loss']:.3f}", f"gen_acc {metrics['train/gen_acc']:.3f}",
                *disc_columns(metrics, "train", cfg.objective.joint), f"lr {lr:.2e}",
                *([f"scale {metrics['train/loss_scale']:g} ({metrics['train/skipped_steps']} skipped)"]
                  if scaler.enabled else []),
                f"{metrics['train/tokens_per_s']:,.0f} tok/s",
                "eta: timing steps for --time-budget" if planner and not plan else
                f"eta {fmt_duration((t.max_steps - step) * step_seconds)}"]))
            if not evaluates():  # no held-out metrics to judge the run's health by: the training ones
                for line in health.update(step, metrics):
                    log.print(line)
        log.progress(step)
        due = (t.eval_every and step % t.eval_every == 0) or step % t.save_every == 0
        if planner is not None and plan is None and planner.ready(
                step, elapsed(), due, torch.cuda.synchronize if cuda else lambda: None,
                lambda flag: dist.any_rank(flag, d.device)):
            plan_schedule()
            evaluated = saved = step
        if t.eval_every and step % t.eval_every == 0 and step < t.max_steps and evaluated != step:
            run_eval()
            evaluated = step
        if step % t.save_every == 0 and step < t.max_steps and saved != step:
            save()
            saved = step
        inject_fault(step, d.rank)
        single = d.world_size == 1
        if single or step % t.log_every == 0:  # ranks agree on stopping only at sync points
            timed_out = t.max_time > 0 and time.time() - start_time >= t.max_time
            if dist.any_rank(stop.signum is not None or timed_out, d.device):
                reason = (f"max_time {t.max_time:g}s reached" if timed_out else "stopped by another rank")
                if stop.signum is not None:
                    reason = stop.reason
                break

    stream.close()
    if step > start_step:
        if evaluated != step:
            run_eval()
        if saved != step:
            save()
    else:  # a finished run re-run: its checkpoint keeps the config and the evaluation it was trained with
        log.print(f"nothing to train: the run has spent its time budget of {t.time_budget:g}s; raise "
                  f"--time-budget to continue it" if spent else
                  f"nothing to train: the run is at step {step} of max_steps {t.max_steps}; raise --max-steps to "
                  f"continue it")
    if d.is_main:
        budget = f"; {elapsed():,.0f}s of the {t.time_budget:g}s time budget spent" if plan else ""
        plot = plot_curves(args.out)
        log.print(f"done at step {step} ({reason}); {tokens_seen:,} tokens seen since the run began{budget}; "
                  f"curves in {plot}")
    log.close()
    dist.cleanup()
    return 0


def main(argv: list[str]) -> int:
    args, overrides = parse_args(argv)
    if args.print_config:  # what the run would use: the dataset's, a resumed run's or the --init folder's config
        cfg, _, _ = resolve_run(args, overrides, PretrainData(args.data[0]) if args.data else None)
        print(cfg.to_json())
        return 0
    if args.out is None:
        raise UserError("--out RUN_DIR is required")
    if args.threads < 0:
        raise UserError(f"--threads {args.threads} must be 0 (torch's default) or more")
    if args.wandb is not None:
        require_wandb(args.wandb)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    before = {p.name for p in args.out.iterdir()} if args.out.is_dir() else None
    lock = lock_run(args.out) if dist.launched_rank() == 0 else None  # the rank that writes the run folder
    try:
        try:
            return train(args, overrides)
        except torch.OutOfMemoryError:
            raise UserError("out of GPU memory; run the same command with a smaller --micro-batch-size (gradient "
                            "accumulation keeps the global batch and the schedule) or with --activation-checkpointing: "
                            "it resumes from the last checkpoint") from None
    except UserError:
        if dist.launched_rank() == 0:  # the rank that writes the run folder
            discard_failed_start(args.out, before)
        raise
    finally:  # an in-process caller (tests, notebooks) gets its Ctrl-C and thread count back, after an error too
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        torch.set_num_threads(threads)
        if lock is not None:
            os.close(lock)
