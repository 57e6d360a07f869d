import time, torch, numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from fer_multires.data.datamodule import AffWild2DataModule
from fer_multires.models.module import FERModule
PAPER = {"enabled": True, "p": 1.0, "min_res": 8, "max_res": 128, "sampling": "pow2"}
torch.backends.cudnn.benchmark = True
class T(Callback):
    def __init__(self): self.marks = []
    def on_train_batch_start(self, *a):
        torch.cuda.synchronize(); self.marks.append(("start", time.perf_counter()))
    def on_train_batch_end(self, *a):
        torch.cuda.synchronize(); self.marks.append(("end", time.perf_counter()))
orig = AffWild2DataModule.on_after_batch_transfer
aug_times = []
def hooked(self, batch, idx):
    torch.cuda.synchronize(); s = time.perf_counter(); out = orig(self, batch, idx); torch.cuda.synchronize(); aug_times.append(time.perf_counter() - s); return out
AffWild2DataModule.on_after_batch_transfer = hooked
for augment_on in ("device", "device", "cpu"):
    aug_times.clear()
    dm = AffWild2DataModule(root="/tmp/fer_synthetic", batch_size=128, num_workers=12, pin_memory=True, resize_size=256, crop_size=224, multires=PAPER, augment_on=augment_on)
    m = FERModule("seresnet50", 7, ["a","b","c","d","e","f","g"], channels_last=True)
    t = T()
    tr = pl.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=60, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[t])
    tr.fit(m, datamodule=dm)
    starts = [v for k, v in t.marks if k == "start"]; ends = [v for k, v in t.marks if k == "end"]
    step = np.array(ends) - np.array(starts); gap = np.array(starts[1:]) - np.array(ends[:-1])
    print(augment_on, "step ms median", round(np.median(step)*1e3,1), "gap ms median", round(np.median(gap)*1e3,1), "gap max", round(gap.max()*1e3,1), "aug ms median", round(np.median(aug_times)*1e3,1) if aug_times else None, "total s", round(ends[-1]-starts[10], 2), "img/s", round(128*(len(ends)-11)/(ends[-1]-starts[10] ),1), flush=True)
    print(" step ms", [round(x*1e3) for x in step[:60]], flush=True)
