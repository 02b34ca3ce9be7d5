"""The training step of a stack of MLPs: packed first layer, hand-written backward, no autograd.

Models are grouped by the input they see. With ``groups`` distinct inputs ``x: [G, B, in]`` and
``per_group`` models per input (``M = G * K`` models in all; model ``k * G + g`` sees input
``g``), the first layer of all K models of a group is one GEMM ``[B, in] @ [in, K * h]``:

- shared batches (every model sees the same batch): the same input, viewed (not copied)
  once per group of models about 1024 columns wide (:func:`shared_input_groups`);
- independent batches (every model its own data): ``G = M, K = 1``, a batched product;
- students of a teacher share that teacher's noise batch: ``G = teachers, K = students each``.

The first layer's weights live packed as ``[G, in, K * h]`` for the whole training run (no
per-step permute or copy of the largest tensor); later layers stay ``[M, in, out]`` and run as
batched products on views. The backward pass is written out (ReLU masks from the saved
activations, gradients of the losses in closed form) and writes straight into persistent
gradient buffers; Adam runs PyTorch's fused kernel where it exists (:class:`BatchedAdam`).

With a ``compute_dtype`` (bfloat16), the products run on low-precision copies of the weights
that live as long as the stack and are refreshed once per Adam step (one cast pass over the
parameters); inputs, activations and weight gradients stay in that dtype from product to
product, and only the final weight gradients are cast to float32 for Adam, which keeps float32
master weights and moments (bf16 cannot hold an lr 3e-4 update of a 0.05 weight).
Everything is elementwise or per model, so the result is each model trained alone (tests check
this against a loop of ``nn.Sequential`` models with ``torch.optim.Adam``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


class BatchedAdam:
    """Adam (PyTorch's defaults: betas 0.9/0.999, eps 1e-8, no weight decay) over given tensors.

    Adam is elementwise, so over stacked ``[M, ...]`` parameters it is M independent Adams.
    On CPU and CUDA it calls PyTorch's fused Adam kernel (the one behind
    ``torch.optim.Adam(fused=True)``: one pass over memory per tensor); elsewhere the same
    update written out. Not ``torch.optim.Adam`` itself: constructing one imports torch._dynamo,
    seconds to tens of seconds on a busy CPU, longer than a small run takes.
    """

    def __init__(
        self,
        params: list[Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        after_step: Callable[[], None] | None = None,
    ) -> None:
        self.params = params
        self.after_step = after_step
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.fused = _fused_supported(params)
        self._steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        """One update from every parameter's ``.grad``."""
        self.step_count += 1
        b1, b2 = self.betas
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("BatchedAdam.step(): every parameter needs a .grad")
        if self.fused:
            torch._foreach_add_(self._steps, 1)
            torch._fused_adam_(
                self.params,
                grads,
                self.exp_avg,
                self.exp_avg_sq,
                [],
                self._steps,
                lr=self.lr,
                beta1=b1,
                beta2=b2,
                weight_decay=0.0,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
        else:
            self._unfused_step(grads)
        if self.after_step is not None:
            self.after_step()

    def _unfused_step(self, grads: list[Tensor]) -> None:
        b1, b2 = self.betas
        bc1 = 1 - b1**self.step_count
        bc2_sqrt = math.sqrt(1 - b2**self.step_count)
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq, strict=True):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / bc1)


def _fused_supported(params: list[Tensor]) -> bool:
    """PyTorch's fused Adam kernel exists for these tensors (CPU or CUDA, floating point)."""
    return (
        hasattr(torch, "_fused_adam_")
        and params[0].device.type in ("cpu", "cuda")
        and params[0].dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    )


def shared_input_groups(models: int, width: int, max_columns: int = 1024) -> int:
    """Input groups for ``models`` that all read one input (shared batches).

    One group would make the first layer a single ``[B, in] @ [in, models * width]`` product,
    but per-group products about ``max_columns`` wide measured 8-26% faster per step on a
    2-core CPU (80 models at batch 1024, 40 at batch 256). So: the most models per group that
    divides ``models`` with ``models per group * width <= max_columns`` (at least one).
    """
    best = 1
    for k in range(1, models + 1):
        if models % k == 0 and k * width <= max_columns:
            best = k
    return models // best


class Workspace:
    """Named tensors reused across steps: fresh memory costs page faults on every step.

    One flat allocation per name, grown when needed; a smaller shape (the short last batch of
    an epoch) views its start, so every tensor handed out is contiguous.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._flat: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        numel = 1
        for n in shape:
            numel *= n
        flat = self._flat.get(name)
        if flat is None or flat.numel() < numel or flat.dtype != dtype:
            flat = torch.empty(numel, dtype=dtype, device=self.device)
            self._flat[name] = flat
        return flat[:numel].view(shape)


class MlpStack:
    """M independent MLPs, trained together; see the module docstring for the layout.

    ``params`` is the usual ``[W1, b1, W2, b2, ...]`` with ``W: [M, in, out]``, ``b: [M, out]``.
    ``compute_dtype`` (e.g. bfloat16) runs the matrix products in that dtype on copies of the
    weights kept in it (refreshed by the optimiser from :meth:`optimizer`), with the
    parameters' dtype for master weights and Adam; None computes in the parameters' dtype.
    """

    def __init__(
        self,
        params: list[Tensor],
        groups: int,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        m = params[0].shape[0]
        if m % groups:
            raise ValueError(f"{m} models cannot be split into {groups} equal input groups")
        self.models, self.groups, self.per_group = m, groups, m // groups
        self.n_layers = len(params) // 2
        self.widths = [params[0].shape[1]] + [params[2 * i].shape[2] for i in range(self.n_layers)]
        self.dtype = params[0].dtype
        self.compute_dtype = compute_dtype if compute_dtype not in (None, self.dtype) else None
        g, k, d_in, h = groups, self.per_group, self.widths[0], self.widths[1]
        w1 = params[0].detach().reshape(k, g, d_in, h).permute(1, 2, 0, 3).reshape(g, d_in, k * h)
        b1 = params[1].detach().reshape(k, g, h).permute(1, 0, 2).reshape(g, 1, k * h)
        rest = []
        for i in range(1, self.n_layers):
            rest += [params[2 * i].detach(), params[2 * i + 1].detach().unsqueeze(1)]
        self.params = [p.clone().contiguous() for p in [w1, b1, *rest]]
        for p in self.params:
            p.grad = torch.zeros_like(p)
        if self.compute_dtype is None:
            self.low = self.params
            self._grads = [p.grad for p in self.params]
        else:
            self.low = [p.to(self.compute_dtype) for p in self.params]
            self._grads = [torch.empty_like(w) for w in self.low]
        self._saved: list[Tensor] = []
        self._ws: list[Tensor] = []
        self._work = Workspace(params[0].device)

    def unpack(self) -> list[Tensor]:
        """The parameters back in the ``[W1, b1, ...]`` layout, model order unchanged."""
        g, k, d_in, h = self.groups, self.per_group, self.widths[0], self.widths[1]
        w1, b1, *rest = (p.detach() for p in self.params)
        out = [
            w1.reshape(g, d_in, k, h).permute(2, 0, 1, 3).reshape(self.models, d_in, h),
            b1.reshape(g, k, h).permute(1, 0, 2).reshape(self.models, h),
        ]
        for i in range(0, len(rest), 2):
            out += [rest[i], rest[i + 1].squeeze(1)]
        return [p.contiguous() for p in out]

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype :meth:`forward` computes in; inputs already in it are not converted."""
        return self.compute_dtype or self.dtype

    def refresh(self) -> None:
        """Copy the master weights into the low-precision ones (after they changed)."""
        if self.compute_dtype is not None:
            torch._foreach_copy_(self.low, self.params)

    def optimizer(self, lr: float) -> BatchedAdam:
        """Adam over the master parameters that refreshes the low-precision weights."""
        return BatchedAdam(self.params, lr, after_step=self.refresh)

    def _buf(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        return self._work.get(name, shape, dtype)

    def forward(self, x: Tensor, save: bool = False) -> Tensor:
        """Logits ``[M, B, out]`` for inputs ``[G, B, in]``; ``save`` keeps what backward needs.

        The returned logits live in a workspace buffer: the next forward overwrites them.
        """
        g, k, h, m = self.groups, self.per_group, self.widths[1], self.models
        if x.dim() != 3 or x.shape[0] != g:
            raise ValueError(f"expected inputs [{g}, batch, in], got {list(x.shape)}")
        ws = self.low
        x = x if x.dtype == self.input_dtype else x.to(self.input_dtype)
        b, dt = x.shape[1], x.dtype
        a1p = torch.baddbmm(ws[1], x, ws[0], out=self._buf("z1", (g, b, k * h), dt)).relu_()
        # Model-major [M, B, h]: a view when G == 1 or K == 1, else one copy.
        a = a1p.view(g, b, k, h).permute(2, 0, 1, 3)
        if g == 1 or k == 1:
            a = a.reshape(m, b, h)
        else:
            a = self._buf("a1", (m, b, h), dt).view(k, g, b, h).copy_(a).view(m, b, h)
        saved = [x, a1p, a]
        for i in range(1, self.n_layers):
            out = self._buf(f"z{i + 1}", (m, b, self.widths[i + 1]), dt)
            a = torch.baddbmm(ws[2 * i + 1], a, ws[2 * i], out=out)
            if i < self.n_layers - 1:
                a.relu_()
                saved.append(a)
        if save:
            self._saved = saved
            self._ws = ws
        return a.float() if self.compute_dtype is not None else a

    def backward(self, d_logits: Tensor) -> None:
        """Gradients of a loss whose gradient w.r.t. the last forward's logits is ``d_logits``.

        Overwrites ``p.grad`` of every parameter (no accumulation).
        """
        if not self._saved:
            raise RuntimeError("backward() needs a forward(x, save=True) first")
        x, a1p, *acts = self._saved
        ws, grads = self._ws, self._grads  # in the products' dtype
        g, k, h, m = self.groups, self.per_group, self.widths[1], self.models
        b, dt = x.shape[1], x.dtype
        dz = d_logits.to(dt)
        for i in range(self.n_layers - 1, 0, -1):
            a_in = acts[i - 1]
            _bmm_into(grads[2 * i], a_in.transpose(1, 2), dz)
            _sum_into(grads[2 * i + 1], dz)
            da = self._buf(f"da{i}", (m, b, self.widths[i]), dt)
            torch.bmm(dz, ws[2 * i].transpose(1, 2), out=da)
            if i > 1:
                dz = self._buf(f"dz{i}", (m, b, self.widths[i]), dt)
                _relu_grad(da, a_in, dz)
            else:
                # Back to the packed layout [G, B, K*h] and the ReLU mask, in one pass.
                dz = self._buf("dz1", (g, b, k * h), dt)
                _relu_grad(
                    da.view(k, g, b, h).permute(1, 2, 0, 3),
                    a1p.view(g, b, k, h),
                    dz.view(g, b, k, h),
                )
        _bmm_into(grads[0], x.transpose(1, 2), dz)
        _sum_into(grads[1], dz)
        if self.compute_dtype is not None:  # one cast pass: gradients to float32 for Adam
            torch._foreach_copy_([p.grad for p in self.params], self._grads)
        self._saved = []


def _relu_grad(grad: Tensor, activation: Tensor, out: Tensor) -> None:
    """``out = grad`` where the ReLU output ``activation`` is positive, else 0 (one pass)."""
    torch.ops.aten.threshold_backward.grad_input(grad, activation, 0, grad_input=out)


def _bmm_into(grad: Tensor, a: Tensor, b: Tensor) -> None:
    """``grad = a @ b`` batched, written in place (all three in one dtype)."""
    torch.bmm(a, b, out=grad)


def _sum_into(grad: Tensor, dz: Tensor) -> None:
    """``grad = dz.sum over the batch``, as ``[M, 1, out]`` (same dtype; float accumulation)."""
    torch.sum(dz, 1, keepdim=True, out=grad)
