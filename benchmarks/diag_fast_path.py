import time, torch, sys
from torch.nn import functional as F
from fer_multires.data.datamodule import AffWild2DataModule
from fer_multires.models.module import FERModule
PAPER = {"enabled": True, "p": 1.0, "min_res": 8, "max_res": 128, "sampling": "pow2"}
def sync(): torch.cuda.synchronize()
for workers in (12,):
    dm = AffWild2DataModule(root="/tmp/fer_synthetic", batch_size=128, num_workers=workers, pin_memory=True, resize_size=256, crop_size=224, multires=PAPER, augment_on="device")
    dm.setup()
    m = FERModule("seresnet50", 7, list(dm.classes), channels_last=True).cuda()
    opt = m.configure_optimizers()["optimizer"]
    loader = dm.train_dataloader()
    t = {"data": 0.0, "h2d": 0.0, "aug": 0.0, "step": 0.0}; n = 0
    it = iter(loader); t0 = time.perf_counter()
    for i in range(40):
        a = time.perf_counter(); b = next(it); t1 = time.perf_counter()
        b = {k: v.cuda(non_blocking=True) if torch.is_tensor(v) else v for k, v in b.items()}; sync(); t2 = time.perf_counter()
        x = dm.batch_transform.train(b["image"], b); sync(); t3 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(m(x), b["label"])
        opt.zero_grad(); loss.backward(); opt.step(); sync(); t4 = time.perf_counter()
        if i >= 5:
            t["data"] += t1 - a; t["h2d"] += t2 - t1; t["aug"] += t3 - t2; t["step"] += t4 - t3; n += 1
    print("workers", workers, {k: round(v / n * 1000, 1) for k, v in t.items()}, "ms/step", flush=True)
    # aug alone repeated on one batch
    for _ in range(3): dm.batch_transform.train(b["image"], b)
    sync(); s = time.perf_counter()
    for _ in range(10): dm.batch_transform.train(b["image"], b)
    sync(); print("aug alone ms", (time.perf_counter() - s) / 10 * 1000, flush=True)
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        dm.batch_transform.train(b["image"], b); sync()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12), flush=True)
