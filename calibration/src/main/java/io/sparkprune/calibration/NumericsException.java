package io.sparkprune.calibration;

/**
 * Bad numbers: NaN or infinity in a weight, an activation or a Hessian, a Hessian that stays
 * indefinite at every dampening tried, or a solve whose result is not finite. The message names the
 * tensor (and the position of the first bad value), what was tried, and the fix.
 */
public class NumericsException extends CalibrationInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong, where, and the fix
     */
    public NumericsException(String message) {
        super(message);
    }
}
