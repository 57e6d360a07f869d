import numpy as np
import pytest

from fer_multires.data.labels import class_names, class_weights

# The paper's Table 1 (training frames per class) and Table 2 (class weights).
PAPER_TABLE1_TRAIN = [585896, 23484, 12497, 11120, 149920, 100548, 38564]

PAPER_TABLE2 = [0.365, 0.975, 0.986, 0.988, 0.837, 0.891, 0.958]


def test_table1_training_counts_give_table2_weights() -> None:
    weights = class_weights(PAPER_TABLE1_TRAIN)
    np.testing.assert_allclose(np.round(weights, 3), PAPER_TABLE2, atol=1e-9)


def test_class_weights_of_an_empty_split_is_an_error() -> None:
    with pytest.raises(ValueError, match="no frames"):
        class_weights([0, 0, 0])


def test_class_names() -> None:
    assert class_names(7)[-1] == "Surprise"
    assert class_names(8)[-1] == "Other"
    with pytest.raises(ValueError, match="7 or 8"):
        class_names(6)
