# Written for assignaudit's tests in mmdetection3d 1.x's format (assignment-semantics.md §11.3(a),
# configs/pointpillars/pointpillars_hv_fpn_sbn-all_8xb4-2x_nus-3d.py).
_base_ = [
    '../_base_/models/pointpillars_hv_fpn_nus.py',
    '../_base_/datasets/nus-3d.py',
    '../_base_/schedules/schedule-2x.py',
    '../_base_/default_runtime.py',
]

# For nuScenes dataset, we usually evaluate the model at the end of training.
train_cfg = dict(val_interval=24)
