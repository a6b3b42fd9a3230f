"""``fused`` as PyTorch operators: opcheck, exact gradients of every order, torch.compile with
no graph break, statistics of the compiled callable through the verify engine, fx tracing,
meta tensors, inference mode, TorchScript tracing."""

from __future__ import annotations

import copy

import pytest
import torch
from dropblock_bench.implementations import fused, fused_ops
from dropblock_bench.implementations.records import FUSED, FUSED_SHARED
from torch import nn

from dropblock_bench.registry import Implementation
from dropblock_bench.verify import Verdict, VerifySettings, verify_implementation

SEED = torch.tensor(12345)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("torch_only", [False, True], ids=["cpu-kernel", "pure-torch"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-channel", "shared"])
@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
def test_opcheck_passes_for_every_operator(torch_only, shared, layout):
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    if layout == "channels-last":
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(fused_ops.drop_block2d, (x, SEED, 0.3, 3, shared, torch_only))
    torch.library.opcheck(fused_ops.drop_block2d_, (x.detach().clone(), SEED, 0.3, 3, shared, torch_only))


def test_the_seed_is_drawn_on_the_cpu_whatever_the_default_device():
    with torch.device("meta"):
        assert fused.draw_seed().device.type == "cpu"


def test_the_operator_is_a_function_of_its_seed():
    x = torch.randn(2, 3, 9, 9)
    first = fused_ops.drop_block2d(x, SEED, 0.3, 3, False)
    assert torch.equal(first, fused_ops.drop_block2d(x, SEED, 0.3, 3, False))
    assert not torch.equal(first, fused_ops.drop_block2d(x, torch.tensor(1), 0.3, 3, False))
    in_place = x.clone()
    fused_ops.drop_block2d_(in_place, SEED, 0.3, 3, False)
    assert torch.equal(in_place, first)
    with pytest.raises(ValueError, match="int64 tensor of one element"):
        fused_ops.drop_block2d(x, torch.tensor(1.0), 0.3, 3, False)


@pytest.mark.parametrize("torch_only", [False, True], ids=["cpu-kernel", "pure-torch"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-channel", "shared"])
@pytest.mark.parametrize("inplace", [False, True], ids=["out-of-place", "in-place"])
def test_gradcheck_and_gradgradcheck_in_float64(torch_only, shared, inplace):
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)

    def call(t):  # a fresh generator each call: the same mask every time gradcheck calls it
        t = t.clone() if inplace else t
        return fused._dispatch(t, 0.3, 3, shared=shared, training=True, inplace=inplace, generator=_generator(), torch_only=torch_only)

    assert torch.autograd.gradcheck(call, (x,))
    assert torch.autograd.gradgradcheck(call, (x,))


@pytest.mark.parametrize("torch_only", [False, True], ids=["cpu-kernel", "pure-torch"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-channel", "shared"])
def test_the_operators_own_autograd_formula_passes_gradgradcheck(torch_only, shared):
    """Eager calls skip the operator (same kernel, same formula); compiled ones use its
    registered formula, checked here on the operator itself."""
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)

    def call(t):
        return fused_ops.drop_block2d(t, SEED, 0.3, 3, shared, torch_only)

    assert torch.autograd.gradcheck(call, (x,))
    assert torch.autograd.gradgradcheck(call, (x,))


@pytest.mark.parametrize("function", [fused.drop_block2d, fused.drop_block2d_shared], ids=["fused", "fused-shared"])
def test_a_gradient_penalty_through_dropblock_is_exact(function):
    """y = (drop(x) * w).sum() + (x * w).sum(): d/dw of sum(dy/dx) is sum(mask * scale) + numel,
    and batch normalisation makes sum(mask * scale) = numel (the scale is a float32 number)."""
    x = torch.randn(4, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    y = (function(x, 0.3, 3, generator=_generator(1)) * w).sum() + (x * w).sum()
    (grad_x,) = torch.autograd.grad(y, x, create_graph=True)
    (grad_w,) = torch.autograd.grad(grad_x.sum(), w)
    mask_times_scale = grad_w - 1
    assert float(grad_w.sum()) == pytest.approx(2 * x.numel(), rel=1e-6)  # the wrong answers were 50 % and 26 % off
    assert torch.equal(mask_times_scale == 0, function(torch.ones_like(x), 0.3, 3, generator=_generator(1)) == 0)


def _model(inplace: bool = False) -> nn.Module:
    """In place after batch norm, whose backward does not read its output (after a ReLU an
    in-place write breaks autograd in eager mode too, as for ``nn.Dropout(inplace=True)``)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), fused.DropBlock2d(0.1, 3, inplace=inplace), nn.ReLU(),
                         fused.DropBlock2dShared(0.2, 3), nn.Conv2d(8, 4, 3)).train()  # fmt: skip


@pytest.mark.slow
def test_compile_fullgraph_has_no_graph_break_and_does_not_recompile():
    model, x = _model(), torch.randn(2, 3, 16, 16)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        outputs = [compiled(x) for _ in range(3)]
        outputs[-1].sum().backward()
    assert not torch.equal(outputs[0], outputs[1])  # a new mask every call


@pytest.mark.slow
def test_compiled_in_place_calls_give_eagers_gradients():
    """In place under compile: the functional operator and a copy into ``x``; with inductor's
    ``fallback_random`` the same seeds as eager, so the same gradients."""
    torch._dynamo.reset()
    eager, x = _model(inplace=True).double(), torch.randn(2, 3, 16, 16, dtype=torch.float64)  # float64: fused float32 kernels round differently
    compiled = copy.deepcopy(eager)
    with torch._inductor.config.patch(fallback_random=True):
        step = torch.compile(compiled, fullgraph=True)
        torch.manual_seed(3)
        step(x).square().sum().backward()
    torch.manual_seed(3)
    eager(x).square().sum().backward()
    for got, want in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(got.grad, want.grad)
    with torch.no_grad():
        assert step(x).shape == (2, 4, 12, 12)


@pytest.mark.slow
def test_compiled_and_eager_masks_are_bitwise_identical_with_inductors_fallback_random():
    """By default inductor draws the seed with its own generator (same law, other numbers);
    with ``fallback_random`` it calls torch's, and the compiled call equals eager bit for bit."""
    torch._dynamo.reset()
    x = torch.randn(4, 8, 16, 16)
    with torch._inductor.config.patch(fallback_random=True):
        compiled = torch.compile(lambda t: fused.drop_block2d(t, 0.3, 3), fullgraph=True)
        torch.manual_seed(5)
        got = compiled(x)
    torch.manual_seed(5)
    assert torch.equal(got, fused.drop_block2d(x, 0.3, 3))


@pytest.mark.slow
@pytest.mark.parametrize("record", [FUSED, FUSED_SHARED], ids=["fused", "fused-shared"])
def test_the_compiled_callable_passes_verify(record):
    """The compiled function, seeded through torch's global RNG, judged on the law like any
    implementation (quick settings: power 0.5 per check, as `dbench verify --quick`)."""
    torch._dynamo.reset()
    compiled = torch.compile(record.load())
    implementation = Implementation(name=f"{record.name}[compiled]", target=compiled, contract=record.contract,
                                    origin="tests", supports_generator=False)  # fmt: skip
    report = verify_implementation(implementation, VerifySettings.for_mode(quick=True))
    failed = [(c.check, c.case, c.reason) for c in report.checks if c.verdict is Verdict.FAIL]
    assert not failed
    assert any(c.check == "rate" and c.verdict is Verdict.PASS for c in report.checks)


def test_symbolic_trace_keeps_dropblock_as_a_call():
    traced = torch.fx.symbolic_trace(_model())
    targets = [node.target for node in traced.graph.nodes if node.op == "call_function"]
    assert [t.__name__ for t in targets] == ["drop_block2d", "drop_block2d_shared"]
    out = traced(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 4, 12, 12)


def test_meta_tensors_in_training_mode():
    x = torch.randn(2, 3, 16, 16, device="meta")
    for module in (fused.DropBlock2d(0.1, 3), fused.DropBlock2dShared(0.1, 3)):
        out = module.train()(x)
        assert out.device.type == "meta" and out.shape == x.shape
    channels_last = torch.empty(2, 3, 8, 8, device="meta").to(memory_format=torch.channels_last)
    assert fused.drop_block2d(channels_last, 0.1, 3).is_contiguous(memory_format=torch.channels_last)


def test_an_inference_mode_call_leaves_no_trace():
    with torch.inference_mode():
        fused.drop_block2d(torch.randn(2, 3, 8, 8), 0.2, 3)
        fused.drop_block2d_shared(torch.randn(2, 3, 8, 8), 0.2, 3, inplace=True)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    fused.drop_block2d(x, 0.2, 3).sum().backward()
    fused.drop_block2d_shared(x * 1, 0.2, 3, inplace=True).sum().backward()
    assert x.grad is not None


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_trace_records_the_operator_and_draws_a_seed_each_call():
    model = _model()
    x = torch.randn(2, 3, 16, 16)
    traced = torch.jit.trace(model, x, check_trace=False)  # two calls differ: the check would say so
    assert "dropblock_bench::drop_block2d" in str(traced.inlined_graph)
    assert not torch.equal(traced(x), traced(x))
