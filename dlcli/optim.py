"""Optimizers, learning-rate schedules, clipping and weight decay: one optax chain.

``[optimizer]`` holds ``kind`` and ``learning_rate``, the chosen optimizer's
own settings (``momentum``, ``b1``...), and four settings shared by all:
``schedule = { kind = "cosine", ... }``, ``clip_global_norm``,
``weight_decay`` (decoupled for adamw, added to the gradient otherwise;
weights only, never biases) and ``reduce_on_plateau = { factor = 0.5,
patience = 5 }``, which scales the updates down when the training loss
stops improving (optax.contrib; the step feeds it each batch's loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlcli.errors import DlcliError
from dlcli.lazy import lazy
from dlcli.registry import Registry

jax = lazy("jax")  # the builders need jax and optax when they run, not when a recipe is checked
optax = lazy("optax")

if TYPE_CHECKING:
    from dlcli.recipe import OptimizerConfig  # the recipe checks its optimizer with this module: a type only

OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")
SHARED_KEYS = ("schedule", "clip_global_norm", "weight_decay", "reduce_on_plateau")
PLATEAU = Registry("reduce_on_plateau")


@OPTIMIZERS.register("sgd")
def sgd(learning_rate, *, momentum: float | None = None, nesterov: bool = False) -> optax.GradientTransformation:
    # None, not 0.0, by default: with the numbers injected into the state (dlcli compare, tune) a number is
    # traced and cannot choose whether the momentum buffer exists.
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


@OPTIMIZERS.register("adam")
def adam(learning_rate, *, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7) -> optax.GradientTransformation:
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


@OPTIMIZERS.register("adamw")
def adamw(learning_rate, *, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7,
          weight_decay: float = 1e-4) -> optax.GradientTransformation:
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weights_only)


@OPTIMIZERS.register("rmsprop")
def rmsprop(learning_rate, *, decay: float = 0.9, eps: float = 1e-7, momentum: float | None = None,
            centered: bool = False) -> optax.GradientTransformation:
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, momentum=momentum, centered=centered)


@OPTIMIZERS.register("adagrad")
def adagrad(learning_rate, *, initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> optax.GradientTransformation:
    return optax.adagrad(learning_rate, initial_accumulator_value=initial_accumulator_value, eps=eps)


@SCHEDULES.register("constant")
def constant(learning_rate: float, total_steps: int) -> optax.Schedule:
    return optax.constant_schedule(learning_rate)


@SCHEDULES.register("exponential")
def exponential(learning_rate: float, total_steps: int, *, decay_rate: float = 0.1, decay_steps: int | None = None,
                staircase: bool = False) -> optax.Schedule:
    """Multiplies the rate by ``decay_rate`` every ``decay_steps`` (default: the whole run)."""
    return optax.exponential_decay(learning_rate, decay_steps or total_steps, decay_rate, staircase=staircase)


@SCHEDULES.register("cosine")
def cosine(learning_rate: float, total_steps: int, *, decay_steps: int | None = None, alpha: float = 0.0) -> optax.Schedule:
    return optax.cosine_decay_schedule(learning_rate, decay_steps or total_steps, alpha=alpha)


@SCHEDULES.register("warmup_cosine")
def warmup_cosine(learning_rate: float, total_steps: int, *, warmup_steps: int = 100, init_value: float = 0.0,
                  end_value: float = 0.0) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(init_value, learning_rate, warmup_steps, max(total_steps, warmup_steps + 1),
                                              end_value)


@PLATEAU.register("reduce_on_plateau")
def reduce_on_plateau(steps_per_epoch: int, *, factor: float = 0.5, patience: int = 5, min_delta: float = 1e-4,
                      cooldown: int = 0, min_scale: float = 0.0) -> optax.GradientTransformation:
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    The training loss is averaged over an epoch's steps before it is judged,
    so ``patience`` and ``cooldown`` count epochs, as in early stopping;
    ``min_delta`` is the relative improvement that counts.
    """
    if not 0.0 < factor < 1.0:
        raise DlcliError(f"optimizer.reduce_on_plateau.factor = {factor}: must be between 0 and 1 (exclusive).")
    if not 0.0 < min_delta <= 1.0 or patience < 1 or cooldown < 0 or min_scale < 0:
        raise DlcliError("optimizer.reduce_on_plateau: min_delta must be in (0, 1], patience >= 1, and cooldown and "
                         f"min_scale >= 0 (got min_delta={min_delta}, patience={patience}, cooldown={cooldown}, "
                         f"min_scale={min_scale}).")
    return optax.contrib.reduce_on_plateau(factor=factor, patience=patience, rtol=min_delta, cooldown=cooldown,
                                           accumulation_size=max(1, steps_per_epoch), min_scale=min_scale)


def learning_rate_scale(opt_state: Any) -> Any:
    """The reduce-on-plateau factor now applied to the learning rate (1.0 without it); traceable."""
    from optax.contrib import ReduceLROnPlateauState

    found = [node for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, ReduceLROnPlateauState))
             if isinstance(node, ReduceLROnPlateauState)]
    return found[0].scale if found else 1.0


def current_learning_rate(opt_state: Any, schedule: Any, step: Any) -> Any:
    """The learning rate the last step used: the injected one when the state holds it, else the schedule's,
    times the reduce-on-plateau factor; traceable."""
    kinds = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
    injected = [node for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, kinds))
                if isinstance(node, kinds)]
    rates = [node.hyperparams["learning_rate"] for node in injected if "learning_rate" in node.hyperparams]
    rate = rates[0] if rates else schedule(step - 1)
    return rate * learning_rate_scale(opt_state)


def weights_only(params: Any) -> Any:
    """True for weight matrices and kernels, False for biases and norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


@dataclass(frozen=True)
class OptimizerPlan:
    """An ``[optimizer]`` section checked and taken apart: everything but the optax objects."""

    kind: str
    settings: dict[str, Any]  # the optimizer's own keyword arguments
    learning_rate: float
    schedule: str
    schedule_settings: dict[str, Any]
    clip: float | None
    decay: float
    plateau: dict[str, Any] | None


def plan_optimizer(config: OptimizerConfig) -> OptimizerPlan:
    """Check every key of ``[optimizer]`` (not a GAN's two) against its registry, without importing optax."""
    settings = config.settings()
    plateau = settings.pop("reduce_on_plateau", None)
    if plateau is not None and not isinstance(plateau, dict):
        raise DlcliError(f"optimizer.reduce_on_plateau = {plateau!r}: must be a table, e.g. "
                         "reduce_on_plateau = { factor = 0.5, patience = 5 }.")
    OPTIMIZERS.check_name(config.kind, where="[optimizer]")
    own = OPTIMIZERS.options(config.kind)
    clip = settings.pop("clip_global_norm", None)
    spec = settings.pop("schedule", None) or {"kind": "constant"}
    spec = dict(spec) if isinstance(spec, dict) else {"kind": spec}
    decay = 0.0 if "weight_decay" in own else settings.pop("weight_decay", 0.0)
    for key, value in (("clip_global_norm", clip), ("weight_decay", decay)):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0
                                  or value == float("inf")):
            raise DlcliError(f"optimizer.{key} = {value!r}: must be a finite number >= 0.")
    schedule = spec.pop("kind", "")
    SCHEDULES.check_name(schedule, where="optimizer.schedule")
    return OptimizerPlan(config.kind, OPTIMIZERS.validate(config.kind, settings, where="[optimizer]"),
                         config.learning_rate, schedule, SCHEDULES.validate(schedule, spec, where="optimizer.schedule"),
                         clip, decay, None if plateau is None else
                         PLATEAU.validate("reduce_on_plateau", plateau, where="optimizer.reduce_on_plateau"))


def check_optimizer(config: OptimizerConfig) -> None:
    """Raise :class:`DlcliError` for any mistake in ``[optimizer]``, a GAN's discriminator table included."""
    if "discriminator" in config.settings():
        plan_optimizer_pair(config)
    else:
        plan_optimizer(config)


def build_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """The learning rate per step (a GAN's: its generator's)."""
    if "discriminator" in config.settings():
        config = plan_optimizer_pair(config)[0]
    return schedule_of(plan_optimizer(config), total_steps)


def schedule_of(plan: OptimizerPlan, total_steps: int) -> optax.Schedule:
    try:
        return SCHEDULES.get(plan.schedule)(plan.learning_rate, total_steps, **plan.schedule_settings)
    except ValueError as error:  # optax's own range checks, e.g. decay_steps <= 0
        raise DlcliError(f"optimizer.schedule: {error}") from None


def injectable(config: OptimizerConfig) -> bool:
    """Whether the optimizer's numbers can live in its state (constant learning rate, one player)."""
    return "discriminator" not in config.settings() and plan_optimizer(config).schedule == "constant"


def build_optimizer(config: OptimizerConfig, total_steps: int, steps_per_epoch: int = 1,
                    inject: bool = False) -> optax.GradientTransformation:
    """The recipe's ``[optimizer]`` as one ``optax.chain``.

    Args:
      config: the recipe section.
      total_steps: optimizer steps in the whole run, the default horizon of decaying schedules.
      steps_per_epoch: how many batch losses reduce-on-plateau averages before judging.
      inject: keep the learning rate and the optimizer's other numbers in its state
        (``optax.inject_hyperparams``), so that variants differing only in them share one
        compiled program, each member with its own values (see :func:`injectable`).
    """
    if "discriminator" in config.settings():
        return two_player_optimizer(config, total_steps, steps_per_epoch)
    plan = plan_optimizer(config)
    clip, decay = optax.clip_by_global_norm, optax.add_decayed_weights
    if inject:
        static = tuple(k for k, v in plan.settings.items() if isinstance(v, (bool, str)) or v is None)
        optimizer = optax.inject_hyperparams(OPTIMIZERS.get(plan.kind), static_args=static)(
            plan.learning_rate, **plan.settings)
        clip = optax.inject_hyperparams(clip)  # the clipping norm and the decay are numbers in the state too
        decay = optax.inject_hyperparams(decay, static_args=("mask",))
    else:
        optimizer = OPTIMIZERS.get(plan.kind)(schedule_of(plan, total_steps), **plan.settings)
    return optax.chain(
        clip(plan.clip) if plan.clip else optax.identity(),
        decay(plan.decay, mask=weights_only) if plan.decay else optax.identity(),
        optimizer,
        PLATEAU.get("reduce_on_plateau")(steps_per_epoch, **plan.plateau) if plan.plateau is not None
        else optax.identity(),
    )


def plan_optimizer_pair(config: OptimizerConfig) -> tuple[OptimizerConfig, OptimizerConfig]:
    """A GAN's ``[optimizer]`` as (generator section, discriminator section), both checked."""
    import pydantic

    from dlcli.registry import describe_validation_error

    settings = config.settings()
    table = settings.pop("discriminator")
    if not isinstance(table, dict):
        raise DlcliError(f"optimizer.discriminator = {table!r}: must be a table, e.g. discriminator = "
                         "{ kind = \"adam\", learning_rate = 0.0002, b1 = 0.5 }.")
    section = type(config)  # the recipe's optimizer section, whose schema the discriminator's table follows
    try:
        own = section(**table)
    except pydantic.ValidationError as error:
        raise DlcliError(describe_validation_error(error, where="optimizer.discriminator",
                                                   valid=section.model_fields)) from None
    generator = section(kind=config.kind, learning_rate=config.learning_rate, **settings)
    plan_optimizer(generator), plan_optimizer(own)
    return generator, own


def two_player_optimizer(config: OptimizerConfig, total_steps: int, steps_per_epoch: int) -> optax.GradientTransformation:
    """A GAN's two optimizers in one transformation, each with its own state.

    ``[optimizer]`` trains the generator; its ``discriminator`` table is a
    complete optimizer section of its own (``kind``, ``learning_rate``, ...)
    for the discriminator. Parameters are routed by the submodule they sit in.
    """
    from dlcli.models.gan import player

    generator, own = plan_optimizer_pair(config)

    def label(path, _) -> str:
        name = player(path)
        if name not in ("generator", "discriminator"):
            raise DlcliError("optimizer.discriminator applies to a GAN (model.kind = \"gan\"), which has a "
                             "discriminator to train; this model has none. Remove optimizer.discriminator.")
        return name

    return optax.multi_transform(
        {"generator": build_optimizer(generator, total_steps, steps_per_epoch),
         "discriminator": build_optimizer(own, total_steps, steps_per_epoch)},
        lambda params: jax.tree_util.tree_map_with_path(label, params))
